package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

// annotate sets one annotation of obj, keeping the others, as
// `kubectl annotate --overwrite` does.
func annotate(t *testing.T, obj client.Object, key, value string) {
	t.Helper()
	eventually(t, func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		a := obj.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[key] = value
		obj.SetAnnotations(a)
		g.Expect(k8s.Patch(context.Background(), obj, patch)).To(Succeed())
	})
}

// poke makes the controllers look at obj again without changing what it asks for.
func poke(t *testing.T, obj client.Object) {
	t.Helper()
	annotate(t, obj, "test.hallpass.dev/poked", time.Now().Format(time.RFC3339Nano))
}

func signingKeys(g Gomega, ns, server string) *config.SigningKeys {
	keys, err := config.ParseSigningKeys(get(g, ns, keysSecretName(server), &corev1.Secret{}).Data[config.KeysSecretKey])
	g.Expect(err).NotTo(HaveOccurred())
	return keys
}

// publishedKeyIDs are the key IDs the server publishes in its JWKS.
func publishedKeyIDs(keys *config.SigningKeys) []string {
	var ids []string
	for _, k := range keys.Public() {
		ids = append(ids, k.KeyID)
	}
	return ids
}

func keysReady(g Gomega, ns, name string) metav1.Condition {
	return condition(get(g, ns, name, &hallpassv1.SSOServer{}).Status.Conditions, hallpassv1.SSOServerKeysReady)
}

// TestSigningKeysRotateOnDemand follows a user who rotates the signing keys with an
// annotation: the rotation waits until relying parties have the next key, happens once per
// annotation value (also across an operator restart that loses the status), and happens
// again for a new value.
func TestSigningKeysRotateOnDemand(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	create(t, s)
	var before *config.SigningKeys
	eventually(t, func(g Gomega) { before = signingKeys(g, ns, "sso") })

	t.Run("a rotation asked for right after the keys were made waits until the next key has been published long enough", func(t *testing.T) {
		annotate(t, s, hallpassv1.AnnotationRotateSigningKeys, "first")
		eventually(t, func(g Gomega) {
			c := keysReady(g, ns, "sso")
			g.Expect(c).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonRotationWaiting))
			g.Expect(c.Message).To(ContainSubstring(before.Next.KeyID))
		})
		NewWithT(t).Expect(signingKeys(g, ns, "sso").Current.KeyID).To(Equal(before.Current.KeyID))
	})

	var rotated *config.SigningKeys
	t.Run("once it is safe the published next key signs and the old current key stays published", func(t *testing.T) {
		clock.Advance(minNextKeyPublished + time.Minute)
		poke(t, s)
		eventually(t, func(g Gomega) {
			rotated = signingKeys(g, ns, "sso")
			g.Expect(rotated.Current.KeyID).To(Equal(before.Next.KeyID))
			g.Expect(rotated.Previous.KeyID).To(Equal(before.Current.KeyID))
			g.Expect(rotated.Next.KeyID).NotTo(BeElementOf(before.Current.KeyID, before.Next.KeyID))
			g.Expect(publishedKeyIDs(rotated)).To(ContainElements(before.Current.KeyID, before.Next.KeyID, rotated.Next.KeyID))
			// The ES256 keys served beside RS256 rotate with them.
			g.Expect(rotated.Other.Current.KeyID).To(Equal(before.Other.Next.KeyID))
			g.Expect(rotated.Other.Previous.KeyID).To(Equal(before.Other.Current.KeyID))
			g.Expect(publishedKeyIDs(rotated)).To(HaveLen(6))
			st := get(g, ns, "sso", &hallpassv1.SSOServer{}).Status.SigningKeys
			g.Expect(st.CurrentKeyID).To(Equal(before.Next.KeyID))
			g.Expect(st.NextKeyID).To(Equal(rotated.Next.KeyID))
			g.Expect(st.RotationRequest).To(Equal("first"))
		})
		eventually(t, func(g Gomega) {
			g.Expect(eventReasons(g, ns, "sso")).To(ContainElement(hallpassv1.ReasonKeysRotated))
		})
	})

	t.Run("the same annotation value does not rotate again, even after a restart that loses the status", func(t *testing.T) {
		clock.Advance(2 * time.Hour)
		stopManager()
		server := get(g, ns, "sso", &hallpassv1.SSOServer{})
		patch := client.MergeFrom(server.DeepCopy())
		server.Status = hallpassv1.SSOServerStatus{}
		g.Expect(k8s.Status().Patch(ctx, server, patch)).To(Succeed())
		g.Expect(startManager()).To(Succeed())
		poke(t, s)
		eventually(t, func(g Gomega) {
			st := get(g, ns, "sso", &hallpassv1.SSOServer{}).Status
			g.Expect(st.SigningKeys.RotationRequest).To(Equal("first"), "status comes back from the keys Secret")
			g.Expect(condition(st.Conditions, hallpassv1.SSOServerKeysReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		})
		after := signingKeys(g, ns, "sso")
		g.Expect(after.Current.KeyID).To(Equal(rotated.Current.KeyID))
		g.Expect(after.Next.KeyID).To(Equal(rotated.Next.KeyID))
	})

	t.Run("a new annotation value rotates once more", func(t *testing.T) {
		annotate(t, s, hallpassv1.AnnotationRotateSigningKeys, "second")
		eventually(t, func(g Gomega) {
			again := signingKeys(g, ns, "sso")
			g.Expect(again.Current.KeyID).To(Equal(rotated.Next.KeyID))
			g.Expect(again.Previous.KeyID).To(Equal(rotated.Current.KeyID))
		})
	})
}

// TestRotationWaitsForTokensOfThePreviousKey checks that a requested rotation does not drop
// a previous key whose ID tokens may still be valid.
func TestRotationWaitsForTokensOfThePreviousKey(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Spec.Tokens.IDToken = "2h"
	create(t, s)
	eventually(t, func(g Gomega) { signingKeys(g, ns, "sso") })
	clock.Advance(minNextKeyPublished + time.Minute)
	annotate(t, s, hallpassv1.AnnotationRotateSigningKeys, "1")
	var first *config.SigningKeys
	eventually(t, func(g Gomega) {
		first = signingKeys(g, ns, "sso")
		g.Expect(first.Previous).NotTo(BeNil())
	})

	clock.Advance(time.Hour)
	annotate(t, s, hallpassv1.AnnotationRotateSigningKeys, "2")
	eventually(t, func(g Gomega) {
		g.Expect(keysReady(g, ns, "sso")).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonRotationWaiting))
	})
	NewWithT(t).Expect(signingKeys(NewWithT(t), ns, "sso").Previous.KeyID).To(Equal(first.Previous.KeyID), "ID tokens of the previous key live 2h")

	clock.Advance(time.Hour + time.Minute)
	poke(t, s)
	eventually(t, func(g Gomega) {
		g.Expect(signingKeys(g, ns, "sso").Current.KeyID).To(Equal(first.Next.KeyID))
	})
}

// TestRevokedSigningKeysLeaveTheJWKSAtOnce is the compromised-key drill: the revoke
// annotation promotes the next key without waiting and unpublishes every key that signed.
func TestRevokedSigningKeysLeaveTheJWKSAtOnce(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	create(t, s)
	var before *config.SigningKeys
	eventually(t, func(g Gomega) { before = signingKeys(g, ns, "sso") })
	clock.Advance(minNextKeyPublished + time.Minute)
	annotate(t, s, hallpassv1.AnnotationRotateSigningKeys, "routine")
	var rotated *config.SigningKeys
	eventually(t, func(g Gomega) {
		rotated = signingKeys(g, ns, "sso")
		g.Expect(rotated.Current.KeyID).To(Equal(before.Next.KeyID))
	})

	annotate(t, s, hallpassv1.AnnotationRevokeSigningKeys, "INC-1234")
	eventually(t, func(g Gomega) {
		revoked := signingKeys(g, ns, "sso")
		g.Expect(revoked.Current.KeyID).To(Equal(rotated.Next.KeyID))
		g.Expect(revoked.Previous).To(BeNil())
		g.Expect(publishedKeyIDs(revoked)).NotTo(ContainElements(before.Current.KeyID))
		g.Expect(publishedKeyIDs(revoked)).NotTo(ContainElement(rotated.Current.KeyID))
		g.Expect(publishedKeyIDs(revoked)).NotTo(ContainElement(rotated.Other.Current.KeyID))
		g.Expect(publishedKeyIDs(revoked)).To(HaveLen(4), "the current and next key of each algorithm")
	})
	// The KeysRevoked reason of KeysReady lasts only until the next reconcile; the Event is
	// what an administrator finds afterwards, and it names the revoked key.
	eventually(t, func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range events.Items {
			if e.Regarding.Name == "sso" && e.Reason == hallpassv1.ReasonKeysRevoked {
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).To(ContainElement(ContainSubstring(rotated.Current.KeyID)))
	})
}

// TestAnnotationsPresentAtCreationDoNotRotateFreshKeys checks that a server applied from a
// template that already carries request annotations starts with keys that answer them.
func TestAnnotationsPresentAtCreationDoNotRotateFreshKeys(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Annotations = map[string]string{hallpassv1.AnnotationRotateSigningKeys: "old", hallpassv1.AnnotationRevokeSigningKeys: "old"}
	create(t, s)
	var first *config.SigningKeys
	eventually(t, func(g Gomega) { first = signingKeys(g, ns, "sso") })
	clock.Advance(minNextKeyPublished + time.Minute)
	poke(t, s)
	eventually(t, func(g Gomega) {
		g.Expect(keysReady(g, ns, "sso")).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
	})
	NewWithT(t).Expect(signingKeys(NewWithT(t), ns, "sso").Current.KeyID).To(Equal(first.Current.KeyID))
}

// acceptedSecrets is what the rendered config accepts as the client's secret.
func acceptedSecrets(g Gomega, ns, server, clientID string) []string {
	c, ok := renderedConfig(g, ns, server).Client(clientID)
	g.Expect(ok).To(BeTrue(), "the server serves the client")
	return c.SecretSHA256
}

func credentialSecret(g Gomega, ns, name, key string) string {
	return string(get(g, ns, name, &corev1.Secret{}).Data[key])
}

// TestClientSecretRotatesWithAnOverlap follows an application team rotating its client
// secret: the credentials Secret gets the new secret at once, the server accepts both for
// the overlap and then only the new one; one annotation value rotates once; revocation ends
// the overlap at once.
func TestClientSecretRotatesWithAnOverlap(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	sc.Spec.Credentials = &hallpassv1.ClientCredentials{Rotation: &hallpassv1.SecretRotation{Overlap: "2h"}}
	create(t, newServer(ns, "sso"), sc)
	id := readyClient(t, ns, "web").Status.ClientID
	old := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)

	var current string
	t.Run("after a rotation the Secret holds a new secret and the server accepts both", func(t *testing.T) {
		annotate(t, sc, hallpassv1.AnnotationRotateClientSecret, "r1")
		eventually(t, func(g Gomega) {
			current = credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)
			g.Expect(current).NotTo(Equal(old))
			g.Expect(current).To(HaveLen(43))
			g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current), digest.Of(old)))
			st := get(g, ns, "web", &hallpassv1.SSOClient{}).Status.ClientSecret
			g.Expect(st.RotationRequest).To(Equal("r1"))
			g.Expect(st.PreviousAcceptedUntil).NotTo(BeNil())
			g.Expect(st.PreviousAcceptedUntil.Time).To(BeTemporally("~", clock.Now().Add(2*time.Hour), time.Minute))
		})
		eventually(t, func(g Gomega) {
			g.Expect(eventReasons(g, ns, "web")).To(ContainElement(hallpassv1.ReasonClientSecretRotated))
		})
	})

	t.Run("the same annotation value does not rotate again, even after a restart that loses the status", func(t *testing.T) {
		stopManager()
		c := get(g, ns, "web", &hallpassv1.SSOClient{})
		patch := client.MergeFrom(c.DeepCopy())
		c.Status = hallpassv1.SSOClientStatus{}
		g.Expect(k8s.Status().Patch(ctx, c, patch)).To(Succeed())
		g.Expect(startManager()).To(Succeed())
		poke(t, sc)
		eventually(t, func(g Gomega) {
			c := readyClient(t, ns, "web")
			g.Expect(c.Status.ClientSecret.RotationRequest).To(Equal("r1"), "status comes back from the client record")
		})
		g.Expect(credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)).To(Equal(current))
		eventually(t, func(g Gomega) {
			g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current), digest.Of(old)))
		})
	})

	t.Run("after the overlap the server accepts only the new secret", func(t *testing.T) {
		clock.Advance(2*time.Hour + time.Minute)
		poke(t, sc)
		eventually(t, func(g Gomega) {
			g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current)))
			c := get(g, ns, "web", &hallpassv1.SSOClient{})
			g.Expect(c.Status.ClientSecret.PreviousAcceptedUntil).To(BeNil())
			g.Expect(clientRecordOf(g, ns, "sso", ns, "web").Annotations).NotTo(HaveKey(annotationPreviousSecretSHA256))
		})
	})

	t.Run("revocation replaces the secret with no overlap", func(t *testing.T) {
		annotate(t, sc, hallpassv1.AnnotationRotateClientSecret, "r2")
		var rotated string
		eventually(t, func(g Gomega) {
			rotated = credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)
			g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(rotated), digest.Of(current)))
		})
		annotate(t, sc, hallpassv1.AnnotationRevokeClientSecret, "leaked")
		eventually(t, func(g Gomega) {
			fresh := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)
			g.Expect(fresh).NotTo(BeElementOf(rotated, current))
			g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(fresh)))
		})
		eventually(t, func(g Gomega) {
			g.Expect(eventReasons(g, ns, "web")).To(ContainElement(hallpassv1.ReasonClientSecretRevoked))
		})
	})
}

// TestServerDropsThePreviousSecretOnItsOwn checks that the server's config loses the
// previous digest when the overlap ends even if the SSOClient controller has not yet
// cleaned up the credentials Secret: the server decides by the time recorded there.
func TestServerDropsThePreviousSecretOnItsOwn(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sc := newClient(ns, "batch", ns, "sso", hallpassv1.MachineToMachine)
	server := newServer(ns, "sso")
	create(t, server, sc)
	id := readyClient(t, ns, "batch").Status.ClientID
	annotate(t, sc, hallpassv1.AnnotationRotateClientSecret, "now")
	var current string
	eventually(t, func(g Gomega) {
		current = credentialSecret(g, ns, "batch-sso-credentials", CredentialsClientSecret)
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(HaveLen(2))
	})
	clock.Advance(defaultSecretOverlap + time.Minute)
	poke(t, server)
	eventually(t, func(g Gomega) {
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current)))
	})
	g.Expect(credentialSecret(g, ns, "batch-sso-credentials", CredentialsClientSecret)).To(Equal(current))
}

// TestClientSecretRotatesOnSchedule crosses spec.credentials.rotation.interval.
func TestClientSecretRotatesOnSchedule(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	sc.Spec.Credentials = &hallpassv1.ClientCredentials{Rotation: &hallpassv1.SecretRotation{Overlap: "1h", Interval: "48h"}}
	create(t, newServer(ns, "sso"), sc)
	id := readyClient(t, ns, "web").Status.ClientID
	old := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)

	clock.Advance(47 * time.Hour)
	poke(t, sc)
	// Reconciles take milliseconds; a second is ample time for a premature rotation to show.
	g.Consistently(func(g Gomega) {
		g.Expect(credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)).To(Equal(old), "not due yet")
	}).WithTimeout(time.Second).WithPolling(waitPoll).Should(Succeed())

	clock.Advance(2 * time.Hour)
	poke(t, sc)
	eventually(t, func(g Gomega) {
		current := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)
		g.Expect(current).NotTo(Equal(old))
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current), digest.Of(old)))
	})
}

// TestABroughtSecretThatChangesKeepsTheOldOneForTheOverlap covers clientSecretRef: the
// user rotates by changing their Secret, and the server keeps accepting the old value for
// the overlap.
func TestABroughtSecretThatChangesKeepsTheOldOneForTheOverlap(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	const first, second = "first-brought-secret-of-at-least-32-characters", "second-brought-secret-of-at-least-32-characters"
	byo := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-secret"}, StringData: map[string]string{"value": first}}
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	sc.Spec.Credentials = &hallpassv1.ClientCredentials{ClientSecretRef: &hallpassv1.SecretKeyReference{Name: "my-secret", Key: "value"}}
	create(t, newServer(ns, "sso"), byo, sc)
	id := readyClient(t, ns, "web").Status.ClientID
	eventually(t, func(g Gomega) {
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(first)))
	})

	byo = get(g, ns, "my-secret", &corev1.Secret{})
	byo.Data["value"] = []byte(second)
	g.Expect(k8s.Update(ctx, byo)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)).To(Equal(second))
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(first), digest.Of(second)))
	})
	eventually(t, func(g Gomega) {
		g.Expect(eventReasons(g, ns, "web")).To(ContainElement(hallpassv1.ReasonClientSecretChanged))
	})

	clock.Advance(defaultSecretOverlap + time.Minute)
	poke(t, sc)
	eventually(t, func(g Gomega) {
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(second)))
	})
}

// TestCredentialKeysCanBeRenamed checks that an application can choose the key names of
// its credentials Secret, and that renaming them moves the same client ID and secret.
func TestCredentialKeysCanBeRenamed(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	sc.Spec.Credentials = &hallpassv1.ClientCredentials{Keys: &hallpassv1.CredentialKeys{ClientID: "OIDC_CLIENT_ID", ClientSecret: "OIDC_CLIENT_SECRET"}}
	create(t, newServer(ns, "sso"), sc)
	id := readyClient(t, ns, "web").Status.ClientID
	data := get(g, ns, "web-sso-credentials", &corev1.Secret{}).Data
	g.Expect(data).To(HaveKeyWithValue("OIDC_CLIENT_ID", []byte(id)))
	g.Expect(data).NotTo(HaveKey(CredentialsClientID))
	g.Expect(data).NotTo(HaveKey(CredentialsClientSecret))
	secret := string(data["OIDC_CLIENT_SECRET"])
	g.Expect(secret).To(HaveLen(43))
	eventually(t, func(g Gomega) {
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(secret)))
	})

	// Rename with the status lost too: the Secret's own record of its keys finds them.
	stopManager()
	c := get(g, ns, "web", &hallpassv1.SSOClient{})
	patch := client.MergeFrom(c.DeepCopy())
	c.Status = hallpassv1.SSOClientStatus{}
	g.Expect(k8s.Status().Patch(ctx, c, patch)).To(Succeed())
	c = get(g, ns, "web", &hallpassv1.SSOClient{})
	c.Spec.Credentials.Keys = &hallpassv1.CredentialKeys{ClientID: "id", ClientSecret: "secret"}
	g.Expect(k8s.Update(ctx, c)).To(Succeed())
	g.Expect(startManager()).To(Succeed())
	eventually(t, func(g Gomega) {
		data := get(g, ns, "web-sso-credentials", &corev1.Secret{}).Data
		g.Expect(data).To(HaveKeyWithValue("id", []byte(id)))
		g.Expect(data).To(HaveKeyWithValue("secret", []byte(secret)))
		g.Expect(data).NotTo(HaveKey("OIDC_CLIENT_ID"))
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(secret)))
	})
	g.Expect(readyClient(t, ns, "web").Status.ClientID).To(Equal(id))
}

// TestAnES256ServerServesRS256KeysToo checks the keys Secret of a server whose algorithm is
// ES256: it holds an RS256 chain beside the ES256 one, since OpenID Connect requires RS256
// always be offered, and a Secret written with one algorithm's keys only (before both were
// served) is completed without touching the keys it had.
func TestAnES256ServerServesRS256KeysToo(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Spec.SigningKeys.Algorithm = "ES256"
	create(t, s)
	var keys *config.SigningKeys
	eventually(t, func(g Gomega) { keys = signingKeys(g, ns, "sso") })
	g := NewWithT(t)
	g.Expect(config.KeyAlgorithm(keys.Current)).To(Equal("ES256"))
	g.Expect(keys.Chain("RS256")).NotTo(BeNil(), "RS256 keys beside the ES256 ones")
	g.Expect(config.KeyAlgorithm(keys.Chain("RS256").Next)).To(Equal("RS256"))

	// What an older operator wrote: the ES256 chain alone.
	secret := get(g, ns, keysSecretName("sso"), &corev1.Secret{})
	keys.Other = nil
	data, err := config.MarshalSigningKeys(keys)
	g.Expect(err).NotTo(HaveOccurred())
	secret.Data[config.KeysSecretKey] = data
	g.Expect(k8s.Update(context.Background(), secret)).To(Succeed())
	poke(t, s)
	eventually(t, func(g Gomega) {
		completed := signingKeys(g, ns, "sso")
		g.Expect(completed.Current.KeyID).To(Equal(keys.Current.KeyID))
		g.Expect(completed.Next.KeyID).To(Equal(keys.Next.KeyID))
		g.Expect(completed.Chain("RS256")).NotTo(BeNil())
	})
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "sso", &hallpassv1.SSOServer{}).Status.SigningKeys.CurrentKeyID).To(Equal(keys.Current.KeyID),
			"the status reports the keys of the server's algorithm")
	})
}
