package devcluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/loopback"
	"github.com/hallpass/hallpass/internal/render"
)

// podTokenLifetime is the lifetime of the ServiceAccount token a local pod gets. A pod that
// runs longer is restarted with a fresh token by changing its template, or by restarting
// `hallpass dev`.
const podTokenLifetime = 24 * 3600

// plan turns a Deployment's pod template into a local process, the way a kubelet turns it
// into a container: the image becomes the hallpass binary, container ports become free
// loopback ports (the "http" or "https" port of an SSO server becomes its issuer's port, so
// that the issuer URL reaches it), the ServiceAccount becomes a kubeconfig holding its token, and
// volumes become directories.
func (r *Runner) plan(ctx context.Context, d *appsv1.Deployment) (spec podSpec, err error) {
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	tmpl := d.Spec.Template
	if len(tmpl.Spec.Containers) != 1 || len(tmpl.Spec.InitContainers) > 0 {
		return spec, fmt.Errorf("plan pod of Deployment %s: pods with exactly one container are %w", key, errUnsupported)
	}
	c := tmpl.Spec.Containers[0]
	if len(c.Command) > 0 {
		return spec, fmt.Errorf("plan pod of Deployment %s: a container command (rather than args to the image's entrypoint) is %w", key, errUnsupported)
	}
	dir, err := tempDirFor(r.opts.WorkDir, key)
	if err != nil {
		return spec, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	spec = podSpec{key: key, hash: templateHash(&tmpl), ports: map[string]int{}, cleanup: func() { _ = os.RemoveAll(dir) }}

	byContainerPort, err := r.planPorts(ctx, d, c, &spec)
	if err != nil {
		return spec, err
	}
	args := rewriteListenArgs(c.Args, byContainerPort)

	kubeconfig, err := r.podKubeconfig(ctx, d.Namespace, tmpl.Spec.ServiceAccountName, dir)
	if err != nil {
		return spec, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	if r.alsoRun(d) {
		env = append(env, "KUBECONFIG="+kubeconfig)
	} else {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	if env, err = appendPodEnv(env, d, c, spec); err != nil {
		return spec, err
	}
	if args, env, err = r.planVolumes(d, c, dir, args, env); err != nil {
		return spec, err
	}
	spec.path, spec.args, spec.env = r.opts.ServerBinary, args, env

	if probe := c.ReadinessProbe; probe != nil && probe.HTTPGet != nil {
		port, ok := lookupPort(spec.ports, probe.HTTPGet.Port)
		if !ok {
			return spec, fmt.Errorf("plan pod of Deployment %s: readiness probe port %s is not a container port", key, probe.HTTPGet.Port.String())
		}
		spec.readinessURL = fmt.Sprintf("http://127.0.0.1:%d%s", port, probe.HTTPGet.Path)
	}
	return spec, nil
}

// planPorts gives every container port, and a readiness probe's undeclared port, a free
// loopback port; it returns them by container port and records them in spec.ports.
func (r *Runner) planPorts(ctx context.Context, d *appsv1.Deployment, c corev1.Container, spec *podSpec) (map[int]int, error) {
	byContainerPort := map[int]int{}
	for _, p := range c.Ports {
		hp, err := r.hostPort(ctx, d, p)
		if err != nil {
			return nil, err
		}
		byContainerPort[int(p.ContainerPort)] = hp
		spec.ports[strconv.Itoa(int(p.ContainerPort))] = hp
		if p.Name != "" {
			spec.ports[p.Name] = hp
		}
	}
	// A kubelet probes a port the container does not declare as well (the operator's health
	// port is one), so such a port gets a loopback port too.
	if probe := c.ReadinessProbe; probe != nil && probe.HTTPGet != nil && probe.HTTPGet.Port.Type == intstr.Int {
		if port := probe.HTTPGet.Port.IntValue(); byContainerPort[port] == 0 {
			hp, err := loopback.FreePort()
			if err != nil {
				return nil, err
			}
			byContainerPort[port] = hp
			spec.ports[strconv.Itoa(port)] = hp
		}
	}
	return byContainerPort, nil
}

// appendPodEnv adds the container's environment: plain values, and the downward API's pod
// namespace and name.
func appendPodEnv(env []string, d *appsv1.Deployment, c corev1.Container, spec podSpec) ([]string, error) {
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			// The downward API's pod namespace, which the operator reads as POD_NAMESPACE.
			env = append(env, e.Name+"="+d.Namespace)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			// The downward API's pod name, under which a server reports its config.
			env = append(env, e.Name+"="+podName(d.Name, spec.hash))
		default:
			return nil, fmt.Errorf("plan pod of Deployment %s: env %s: valueFrom other than the pod's namespace or name is %w", spec.key, e.Name, errUnsupported)
		}
	}

	return env, nil
}

// planVolumes gives each volume mount a directory under dir.
func (r *Runner) planVolumes(d *appsv1.Deployment, c corev1.Container, dir string, args, env []string) ([]string, []string, error) {
	for _, m := range c.VolumeMounts {
		src, err := r.volumeDir(d, dir, m)
		if err != nil {
			return nil, nil, err
		}
		// A local process cannot see a volume at the pod's path without a mount namespace
		// (root only), so the server is told where each volume is instead.
		switch m.MountPath {
		case "/tmp":
			env = append(env, "TMPDIR="+src)
		case render.DataDir:
			args = append(args, "--data-dir="+src)
		default:
			return nil, nil, fmt.Errorf("plan pod of Deployment %s: volume mount at %s is %w", types.NamespacedName{Namespace: d.Namespace, Name: d.Name}, m.MountPath, errUnsupported)
		}
	}

	return args, env, nil
}

// podName names one local pod as a ReplicaSet would: the Deployment, its template's hash
// and a random suffix, so that every process start is a new pod.
func podName(deployment, hash string) string {
	return deployment + "-" + hash[:10] + "-" + strings.ToLower(rand.Text()[:5])
}

func templateHash(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func lookupPort(ports map[string]int, p intstr.IntOrString) (int, bool) {
	hp, ok := ports[p.String()]
	return hp, ok
}

// listenArg matches a flag value that is a listen address, such as "--listen=:8080",
// "--metrics-listen=0.0.0.0:9090" or ":8080" after a separate flag.
var listenArg = regexp.MustCompile(`^(-{1,2}[A-Za-z0-9-]+=)?([^:=/]*):([0-9]{1,5})$`)

// rewriteListenArgs points every listen address on a container port at its loopback port.
// Only loopback is used, so a dev cluster is never reachable from the network.
func rewriteListenArgs(args []string, ports map[int]int) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		m := listenArg.FindStringSubmatch(a)
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[3])
		if hp, ok := ports[port]; ok {
			out[i] = m[1] + "127.0.0.1:" + strconv.Itoa(hp)
		}
	}
	return out
}

// hostPort chooses the loopback port of a container port.
func (r *Runner) hostPort(ctx context.Context, d *appsv1.Deployment, p corev1.ContainerPort) (int, error) {
	if p.Name == "http" || p.Name == "https" {
		if port, err := r.issuerPort(ctx, d); err != nil || port != 0 {
			return port, err
		}
	}
	return loopback.FreePort()
}

// issuerPort is the port of the issuer URL of the SSOServer that owns d, or 0 when the
// issuer names none: browsers and applications reach the server at its issuer URL, so
// the process must listen there.
func (r *Runner) issuerPort(ctx context.Context, d *appsv1.Deployment) (int, error) {
	owner := metav1.GetControllerOf(d)
	if owner == nil || owner.Kind != "SSOServer" {
		return 0, nil
	}
	var srv hallpassv1.SSOServer
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: owner.Name}, &srv); err != nil {
		return 0, fmt.Errorf("get SSOServer %s/%s of Deployment %s: %w", d.Namespace, owner.Name, d.Name, err)
	}
	return portOf(srv.Spec.Issuer), nil
}

// portOf is the explicit port of a URL, or 0.
func portOf(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0
	}
	return port
}

// volumeDir is the directory that backs one volume mount: per pod start for an emptyDir,
// per claim for a PersistentVolumeClaim, so that a server's SQLite database and its
// sessions survive a restart as they would on a real volume.
func (r *Runner) volumeDir(d *appsv1.Deployment, podDir string, m corev1.VolumeMount) (string, error) {
	var vol *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == m.Name {
			vol = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	var dir string
	switch {
	case vol == nil:
		return "", fmt.Errorf("plan pod of Deployment %s/%s: volume mount %s names no volume", d.Namespace, d.Name, m.Name)
	case vol.EmptyDir != nil:
		dir = filepath.Join(podDir, "volumes", m.Name)
	case vol.PersistentVolumeClaim != nil:
		dir = filepath.Join(r.opts.WorkDir, "claims", d.Namespace, vol.PersistentVolumeClaim.ClaimName)
	default:
		return "", fmt.Errorf("plan pod of Deployment %s/%s: volume %s: only emptyDir and persistentVolumeClaim volumes are %w", d.Namespace, d.Name, m.Name, errUnsupported)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create directory of volume %s: %w", m.Name, err)
	}
	return dir, nil
}

// podKubeconfig writes a kubeconfig that authenticates as the pod's ServiceAccount, with a
// token from the TokenRequest API, so the server reads its Secrets with exactly the
// permissions the operator's Role gives it, as in a cluster.
func (r *Runner) podKubeconfig(ctx context.Context, namespace, serviceAccount, dir string) (string, error) {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	tr, err := r.kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(podTokenLifetime))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request a token for ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["dev"] = &clientcmdapi.Cluster{Server: r.opts.RestConfig.Host, CertificateAuthorityData: r.opts.RestConfig.CAData}
	cfg.AuthInfos["pod"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["pod"] = &clientcmdapi.Context{Cluster: "dev", AuthInfo: "pod", Namespace: namespace}
	cfg.CurrentContext = "pod"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("write pod kubeconfig: %w", err)
	}
	return path, nil
}
