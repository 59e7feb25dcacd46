package config

import (
	"strings"
	"testing"
)

const validYAML = `
issuer: https://sso.example.com
session: {absoluteLifetime: 168h, idleTimeout: 72h}
tokens: {idToken: 1h, accessToken: 1h, refreshToken: 720h, refreshReuseInterval: 3s, authorizationCode: 1m}
storage: {type: SQLite, sqlitePath: /tmp/h.db}
signing: {algorithm: RS256}
clients:
- {id: a, name: A, type: SinglePageApp, singleSignOn: true, connections: [db]}
- {id: b, name: B, type: RegularWebApp, singleSignOn: true, secretSHA256: [abc]}
connections:
- {name: db, type: Database, database: {}}
apis:
- identifier: https://api.example.com/orders
  name: shop/orders
  scopes: [orders:read, orders:write]
  tokenFormat: JWT
  tokenLifetime: 10m
  grants:
  - {clientID: b, userFlows: {scopes: [orders:read]}, clientCredentials: {}}
`

func TestParse(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		edit func(string) string
		err  string
	}{
		"a valid config is accepted":                                      {edit: func(s string) string { return s }},
		"a misspelt field is refused":                                     {edit: func(s string) string { return s + "isuer: x\n" }, err: "isuer"},
		"an http issuer is refused outside dev mode":                      {edit: replace("https://sso", "http://sso"), err: "must use https"},
		"an http issuer is fine in dev mode":                              {edit: func(s string) string { return replace("https://sso", "http://sso")(s) + "devMode: true\n" }},
		"an idle timeout over the lifetime":                               {edit: replace("idleTimeout: 72h", "idleTimeout: 200h"), err: "idleTimeout must not exceed"},
		"a duration that does not parse":                                  {edit: replace("idToken: 1h", "idToken: soon"), err: "parse duration"},
		"clients out of order":                                            {edit: replace("id: a, name: A", "id: c, name: A"), err: "clients must be sorted"},
		"a public client with a secret":                                   {edit: replace("type: SinglePageApp,", "type: SinglePageApp, secretSHA256: [x],"), err: "public client but has a secret"},
		"a confidential client without a secret":                          {edit: replace(", secretSHA256: [abc]", ""), err: "confidential client without a secret"},
		"a client naming an unknown connection":                           {edit: replace("connections: [db]", "connections: [ldap]"), err: `unknown connection "ldap"`},
		"a Database connection without its block":                         {edit: replace(", database: {}", ""), err: "has no database block"},
		"a client that names its own audience (the fields before SSOAPI)": {edit: replace("secretSHA256: [abc]", "secretSHA256: [abc], accessTokenAudience: 'https://api.example/orders'"), err: "accessTokenAudience"},
		"an API identifier with a space":                                  {edit: replace("identifier: https://api.example.com/orders", "identifier: 'urn:orders api'"), err: "must be an absolute URI"},
		"an API identifier that is a client ID":                           {edit: replace("identifier: https://api.example.com/orders", "identifier: b"), err: `identifier "b" is a client ID`},
		"an API identifier that is the issuer":                            {edit: replace("identifier: https://api.example.com/orders", "identifier: https://sso.example.com"), err: "is the issuer"},
		"an API granting a scope it does not define":                      {edit: replace("scopes: [orders:read]}", "scopes: [orders:admin]}"), err: `grants scope "orders:admin"`},
		"an API granting an unknown client":                               {edit: replace("clientID: b,", "clientID: z,"), err: `unknown client "z"`},
		"an API defining an OpenID scope":                                 {edit: replace("scopes: [orders:read, orders:write]", "scopes: [openid]"), err: `"openid" is not a scope an API may define`},
		"an API token format that does not exist":                         {edit: replace("tokenFormat: JWT", "tokenFormat: SAML"), err: `tokenFormat "SAML"`},
		"an unknown storage type":                                         {edit: replace("type: SQLite", "type: Redis"), err: `storage.type "Redis"`},
		"every problem is reported at once": {
			edit: func(s string) string {
				return replace("algorithm: RS256", "algorithm: HS256")(replace("idToken: 1h", "idToken: 0s")(s))
			},
			err: "tokens.idToken must be positive\nsigning.algorithm",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.edit(validYAML)))
			if tc.err == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg+" keys survive the Secret and rotate through the slots", func(t *testing.T) {
			t.Parallel()
			keys, err := NewSigningKeys(alg)
			if err != nil {
				t.Fatal(err)
			}
			data, err := MarshalSigningKeys(keys)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseSigningKeys(data)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Current.KeyID != keys.Current.KeyID || parsed.Next.KeyID != keys.Next.KeyID || parsed.Previous != nil {
				t.Fatalf("round trip changed the keys")
			}
			other := map[string]string{"RS256": "ES256", "ES256": "RS256"}[alg]
			if parsed.Chain(alg) != &parsed.KeyChain || parsed.Chain(other) == nil || parsed.Chain(other) != parsed.Other {
				t.Fatalf("want a chain of %s first and one of %s beside it", alg, other)
			}
			for _, c := range parsed.Chains() {
				a := KeyAlgorithm(c.Current)
				cur, next := c.Current.KeyID, c.Next.KeyID
				if err := parsed.Copy().Rotate(); err != nil {
					t.Fatal(err)
				}
				if c.Current.KeyID != cur {
					t.Fatalf("rotating a copy moved the %s chain", a)
				}
				if err := parsed.Rotate(); err != nil {
					t.Fatal(err)
				}
				if c.Current.KeyID != next || c.Previous.KeyID != cur || c.Next.KeyID == next || KeyAlgorithm(c.Next) != a {
					t.Fatalf("rotation did not move the %s slots: %s %s %s", a, c.Previous.KeyID, c.Current.KeyID, c.Next.KeyID)
				}
			}
			for _, k := range parsed.Public() {
				if !k.IsPublic() {
					t.Fatalf("Public returned private key %s", k.KeyID)
				}
			}
			if len(parsed.Public()) != 6 {
				t.Fatalf("want current, next and previous of both algorithms published, got %d keys", len(parsed.Public()))
			}
		})
	}
	t.Run("a Secret of one algorithm's keys is completed with the other's", func(t *testing.T) {
		keys, _ := NewSigningKeys("ES256")
		keys.Other = nil
		data, _ := MarshalSigningKeys(keys)
		parsed, err := ParseSigningKeys(data)
		if err != nil {
			t.Fatal(err)
		}
		if added, err := parsed.Complete(); err != nil || !added || parsed.Chain("RS256") == nil || parsed.Chain("ES256").Current.KeyID != keys.Current.KeyID {
			t.Fatalf("Complete = %v, %v: want an RS256 chain added beside the ES256 keys", added, err)
		}
		if added, _ := parsed.Complete(); added {
			t.Fatal("a complete key set was completed again")
		}
	})
	t.Run("a keys document holding only public keys is refused", func(t *testing.T) {
		t.Parallel()
		keys, _ := NewSigningKeys("ES256")
		pub := keys.Current.Public()
		keys.Current = &pub
		data, _ := MarshalSigningKeys(keys)
		if _, err := ParseSigningKeys(data); err == nil {
			t.Fatal("accepted a public key as signing key")
		}
	})
}
