package conntest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Directory contents of every slapd the tests start.
const (
	LDAPSuffix       = "dc=example,dc=org"
	LDAPAdminDN      = "cn=admin,dc=example,dc=org"
	LDAPAdminPass    = "admin-secret"
	LDAPServiceDN    = "cn=hallpass,ou=services,dc=example,dc=org"
	LDAPServicePass  = "service-secret"
	LDAPUsersDN      = "ou=people,dc=example,dc=org"
	LDAPGroupsDN     = "ou=groups,dc=example,dc=org"
	LDAPAlicePass    = "alice-secret"
	LDAPBobPass      = "bob-secret"
	slapdBinary      = "/usr/sbin/slapd"
	slapaddBinary    = "/usr/sbin/slapadd"
	slapdStartBudget = 20 * time.Second
)

// seedLDIF: alice is in admins (groupOfNames, by DN) and devs (posixGroup, by uid);
// bob is in no group; mallory is not a person, so the user filter excludes her.
const seedLDIF = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=hallpass,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: hallpass
userPassword: service-secret

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
displayName: Alice Liddell
mail: alice@example.org
userPassword: alice-secret

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Builder
mail: bob@example.org
userPassword: bob-secret

dn: uid=mallory,ou=services,dc=example,dc=org
objectClass: account
objectClass: simpleSecurityObject
uid: mallory
userPassword: mallory-secret

dn: cn=admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: admins
member: uid=alice,ou=people,dc=example,dc=org

dn: cn=devs,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: devs
gidNumber: 5000
memberUid: alice
`

// Slapd is a running OpenLDAP server.
type Slapd struct {
	// LDAPURL accepts StartTLS; LDAPSURL is TLS from the first byte.
	LDAPURL, LDAPSURL string
	// CA signed the server's certificate.
	CA *CA
}

// StartSlapd runs slapd on two loopback ports with a fresh database seeded with seedLDIF,
// and stops it when the test ends.
func StartSlapd(t testing.TB) *Slapd {
	t.Helper()
	skipShort(t, "starts slapd")
	if _, err := os.Stat(slapdBinary); err != nil {
		t.Fatalf("slapd not found at %s (hack/install-deps.sh installs it): %v", slapdBinary, err)
	}
	dir := t.TempDir()
	ca := NewCA(t)
	certPEM, keyPEM := ca.Issue(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		return p
	}
	caFile, certFile, keyFile := write("ca.pem", ca.CertPEM), write("cert.pem", certPEM), write("key.pem", keyPEM)
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := write("slapd.conf", fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[2]s
TLSCertificateFile %[3]s
TLSCertificateKeyFile %[4]s
database mdb
maxsize 10485760
suffix "%[5]s"
rootdn "%[6]s"
rootpw %[7]s
directory %[1]s/db
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
`, dir, caFile, certFile, keyFile, LDAPSuffix, LDAPAdminDN, LDAPAdminPass))
	seed := write("seed.ldif", seedLDIF)
	if out, err := exec.Command(slapaddBinary, "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("seed the directory with slapadd: %v\n%s", err, out)
	}
	ldapPort, ldapsPort := FreePort(t), FreePort(t)
	s := &Slapd{
		LDAPURL:  fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort),
		LDAPSURL: fmt.Sprintf("ldaps://127.0.0.1:%d", ldapsPort),
		CA:       ca,
	}
	ctx, cancel := context.WithCancel(context.Background())
	// -d keeps slapd in the foreground, so the test owns the process and its end.
	cmd := exec.CommandContext(ctx, slapdBinary, "-f", conf, "-h", s.LDAPURL+"/ "+s.LDAPSURL+"/", "-d", "0")
	startPeer(t, "slapd", cmd, cancel)
	WaitForPort(t, fmt.Sprintf("127.0.0.1:%d", ldapPort), slapdStartBudget)
	WaitForPort(t, fmt.Sprintf("127.0.0.1:%d", ldapsPort), slapdStartBudget)
	return s
}
