// Package version holds the build version, set with -ldflags "-X ...Version=v1.2.3".
package version

// Version of this build. The operator deploys the server image of the same version.
var Version = "dev"

// ServerImage is the default image of SSO server pods: the one of this build.
func ServerImage() string { return "hallpass/hallpass:" + Version }
