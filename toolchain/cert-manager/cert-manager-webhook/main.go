// Command cert-manager-webhook is the local cluster's cert-manager admission webhook:
// the API server sends it every cert-manager object that is created or changed, and it
// refuses the invalid ones (an Issuer of two kinds, a Certificate without a name, ...),
// stamps each CertificateRequest with the identity of whoever created it, and refuses
// an approval from anyone not allowed to approve for the request's issuer.
//
// Upstream's webhook command lives in a module of its own that the Go module proxy does
// not serve. The server is a library package of github.com/cert-manager/cert-manager
// (pkg/webhook/server); the admission plugins and the API types they check against are
// internal packages of that module, importable here only because this module's path
// lies under github.com/cert-manager/cert-manager (see go.mod).
//
// It serves with the certificate and key it is given as files (the local cluster's own
// CA signs them, and the webhook configurations name that CA), so nothing has to
// generate a CA at run time and copy it into the configurations: no cainjector. No
// configuration file, metrics or profiler.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	acmeinstall "github.com/cert-manager/cert-manager/internal/apis/acme/install"
	cminstall "github.com/cert-manager/cert-manager/internal/apis/certmanager/install"
	metainstall "github.com/cert-manager/cert-manager/internal/apis/meta/install"
	"github.com/cert-manager/cert-manager/internal/webhook/admission/certificaterequest/approval"
	"github.com/cert-manager/cert-manager/internal/webhook/admission/certificaterequest/identity"
	"github.com/cert-manager/cert-manager/internal/webhook/admission/resourcevalidation"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/server/tls"
	"github.com/cert-manager/cert-manager/pkg/webhook/admission"
	"github.com/cert-manager/cert-manager/pkg/webhook/server"
)

func main() {
	// A flag set of our own: imported packages register flags of theirs on flag.CommandLine.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	port := flags.Int("secure-port", 10250, "port of the webhook (HTTPS: /validate and /mutate)")
	healthzPort := flags.Int("healthz-port", 6080, "port of /healthz and /livez (plain HTTP)")
	certFile := flags.String("tls-cert-file", "", "the serving certificate (PEM), reread when it changes")
	keyFile := flags.String("tls-private-key-file", "", "its private key (PEM)")
	verbosityFlag(flags)
	_ = flags.Parse(os.Args[1:]) // ExitOnError
	if *certFile == "" || *keyFile == "" {
		fmt.Fprintln(os.Stderr, "--tls-cert-file and --tls-private-key-file are required")
		os.Exit(2)
	}

	logf.InitLogs()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx = logf.NewContext(ctx, logf.Log, "webhook")
	err := run(ctx, *port, *healthzPort, &tls.FileCertificateSource{CertPath: *certFile, KeyPath: *keyFile})
	stop()
	if err != nil {
		logf.Log.Error(err, "webhook stopped")
		logf.FlushLogs()
		os.Exit(1)
	}
	logf.FlushLogs()
}

func run(ctx context.Context, port, healthzPort int, certificate tls.CertificateSource) error {
	restConfig, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	// Who may approve a CertificateRequest is the API server's answer to a
	// SubjectAccessReview (verb `approve` on the issuer's `signers`); answers are
	// cached for a second, as upstream does.
	authorizer, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: client.AuthorizationV1(),
		AllowCacheTTL:             time.Second,
		DenyCacheTTL:              time.Second,
		WebhookRetryBackoff:       &wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: 2, Cap: 5 * time.Second},
	}.New()
	if err != nil {
		return err
	}
	// Upstream's three plugins, in its order: a CertificateRequest gets who asked for it
	// and may be approved only by someone allowed to; every object is checked against
	// its kind's validation rules. Each lets through what it does not handle.
	plugins := admission.PluginChain{
		identity.NewPlugin(),
		approval.NewPlugin(authorizer, client.Discovery()),
		resourcevalidation.NewPlugin(),
	}
	// The objects arrive as v1; the plugins validate their internal form.
	scheme := runtime.NewScheme()
	cminstall.Install(scheme)
	acmeinstall.Install(scheme)
	metainstall.Install(scheme)

	srv := &server.Server{
		ListenAddr:           port,
		HealthzAddr:          &healthzPort,
		ResourceScheme:       scheme,
		CertificateSource:    certificate,
		ValidationWebhook:    plugins,
		MutationWebhook:      plugins,
		MetricsListenAddress: "0", // no metrics server
	}
	return srv.Run(ctx)
}

// verbosityFlag adds klog's -v (log verbosity) to fs, without klog's other flags.
func verbosityFlag(fs *flag.FlagSet) {
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	v := klogFlags.Lookup("v")
	fs.Var(v.Value, v.Name, v.Usage)
}
