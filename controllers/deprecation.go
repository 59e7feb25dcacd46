package controllers

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// deprecationNotice says what the deprecated fields of c no longer do and what to do
// instead; empty when c sets none. The webhook shows it as a warning on apply, and the
// Deprecated condition and its Event keep it visible afterwards.
func deprecationNotice(c *hallpassv1.SSOClient) string {
	var fields []string
	if c.Spec.AccessTokenAudience != "" {
		fields = append(fields, "spec.accessTokenAudience")
	}
	if len(c.Spec.AllowedScopes) > 0 {
		fields = append(fields, "spec.allowedScopes")
	}
	if len(fields) == 0 {
		return ""
	}
	return fmt.Sprintf("%s grant nothing and are ignored: an API, its scopes and which clients may get them are declared by an SSOAPI in the namespace of SSOServer %s, "+
		"and the client asks for it with the audience parameter; remove the fields (guide: \"APIs and grants\")", strings.Join(fields, " and "), c.Spec.ServerRef.Name)
}

// reportDeprecatedFields sets the Deprecated condition while the spec sets deprecated
// fields and removes it once they are gone. It never affects Ready: the client works, it
// just gets no API access from these fields.
func reportDeprecatedFields(conds *conditionSetter, c *hallpassv1.SSOClient) {
	notice := deprecationNotice(c)
	if notice == "" {
		conds.remove(hallpassv1.SSOClientDeprecated)
		return
	}
	conds.set(hallpassv1.SSOClientDeprecated, metav1.ConditionTrue, hallpassv1.ReasonIgnoredFields, notice)
}
