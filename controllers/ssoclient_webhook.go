package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// The webhook refuses, at apply time, what CEL cannot see because it depends on the server:
// plain-http URIs on hosts other than loopback when the server is not in devMode. It fails
// open (failurePolicy Ignore) because the SSOClient controller enforces the same rule
// through admitClient; an operator outage never blocks an apply.
//
// +kubebuilder:webhook:path=/validate-sso-hallpass-dev-v1alpha1-ssoclient,mutating=false,failurePolicy=ignore,sideEffects=None,groups=sso.hallpass.dev,resources=ssoclients,verbs=create;update,versions=v1alpha1,name=vssoclient.sso.hallpass.dev,admissionReviewVersions=v1,timeoutSeconds=5

type ssoClientValidator struct {
	reader client.Reader
}

var _ admission.Validator[*hallpassv1.SSOClient] = ssoClientValidator{}

func (v ssoClientValidator) ValidateCreate(ctx context.Context, c *hallpassv1.SSOClient) (admission.Warnings, error) {
	return v.validate(ctx, c)
}

func (v ssoClientValidator) ValidateUpdate(ctx context.Context, _, c *hallpassv1.SSOClient) (admission.Warnings, error) {
	return v.validate(ctx, c)
}

func (v ssoClientValidator) ValidateDelete(context.Context, *hallpassv1.SSOClient) (admission.Warnings, error) {
	return nil, nil
}

func (v ssoClientValidator) validate(ctx context.Context, c *hallpassv1.SSOClient) (admission.Warnings, error) {
	var warnings admission.Warnings
	if notice := deprecationNotice(c); notice != "" {
		warnings = append(warnings, notice)
	}
	ns, name := c.ServerKey()
	var server hallpassv1.SSOServer
	if err := v.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &server); err != nil {
		if apierrors.IsNotFound(err) {
			return append(warnings, fmt.Sprintf("SSOServer %s/%s does not exist yet; the client is served once it does", ns, name)), nil
		}
		// Not the user's fault: admit, and let the controller decide when it can read.
		return warnings, nil // fail open, as the webhook's failurePolicy does
	}
	if !server.Spec.DevMode {
		if path, uri := insecureURI(c); path != "" {
			return nil, apierrors.NewInvalid(hallpassv1.GroupVersion.WithKind("SSOClient").GroupKind(), c.Name, field.ErrorList{
				field.Invalid(field.NewPath(path), uri, fmt.Sprintf(
					"uses http on a host that is not loopback; use https, or enable spec.devMode on SSOServer %s/%s for local development", ns, name)),
			})
		}
	}
	refused, err := admitClient(ctx, v.reader, &server, c)
	if err == nil && refused != nil {
		warnings = append(warnings, refused.message)
	}
	return warnings, nil
}
