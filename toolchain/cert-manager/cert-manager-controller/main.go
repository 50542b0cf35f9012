// Command cert-manager-controller is the local cluster's cert-manager controller: it
// turns an ACME Issuer and a Certificate in a stack's namespace into a signed
// certificate in a Secret, answering the ACME server's HTTP-01 challenge through an
// Ingress or a Gateway API HTTPRoute.
//
// Upstream's controller command lives in a module of its own that the Go module proxy
// does not serve. Its control loops do not: they are library packages of
// github.com/cert-manager/cert-manager, each of which registers itself with
// pkg/controller when it is imported. This program imports only the loops that path
// needs and runs them; it has no configuration file, no leader election (the
// Deployment runs one replica and replaces it with Recreate), no metrics and no
// profiler, and no issuer but ACME.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	"github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	cracme "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The ACME issuer: what the issuers and certificaterequests-issuer-acme loops turn
	// an Issuer with an `acme` section into (it registers itself with pkg/issuer).
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
)

// The control loops, by the names they register under, in the order a certificate
// passes through them.
var loops = []string{
	issuers.ControllerName,         // Issuer: registers the ACME account, then Ready
	trigger.ControllerName,         // Certificate: new, changed or due for renewal
	keymanager.ControllerName,      // its next private key, in a temporary Secret
	requestmanager.ControllerName,  // a CertificateRequest for that key
	approver.ControllerName,        // approves requests to cert-manager.io issuers
	cracme.CRControllerName,        // a request to an ACME Issuer becomes an Order
	acmeorders.ControllerName,      // Order: its Challenges, then the signed chain
	acmechallenges.ControllerName,  // Challenge: solver pod, Service and route; validation
	issuing.ControllerName,         // Certificate: the chain and key into its Secret
	readiness.ControllerName,       // Certificate: the Ready condition
	revisionmanager.ControllerName, // Certificate: old CertificateRequests removed
}

// Workers per loop: upstream's default.
const workers = 5

func main() {
	// A flag set of our own: imported packages register flags of theirs on flag.CommandLine.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	solverImage := flags.String("acme-http01-solver-image", "", "image of the pods that answer HTTP-01 challenges (runs cert-manager-acmesolver)")
	verbosityFlag(flags)
	_ = flags.Parse(os.Args[1:]) // ExitOnError
	if *solverImage == "" {
		fmt.Fprintln(os.Stderr, "--acme-http01-solver-image is required")
		os.Exit(2)
	}

	logf.InitLogs()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	err := run(ctx, *solverImage)
	stop()
	if err != nil {
		logf.Log.Error(err, "controller stopped")
		logf.FlushLogs()
		os.Exit(1)
	}
	logf.FlushLogs()
}

func run(ctx context.Context, solverImage string) error {
	group, ctx := errgroup.WithContext(ctx)
	// In-cluster credentials (no kubeconfig or host given). The values are upstream's
	// defaults; the solver's resources are what its pods request in the stack's namespace.
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 solverImage,
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			// How long a challenge waits before its reachability check (HTTP-01 too, the
			// name notwithstanding) is tried again; left at zero it would spin. Upstream's
			// default is 10 s, but here the solver pod answers a few seconds after the
			// challenge is presented, and every check it misses cost up to 10 s of each
			// issuance (presented to verified: 21 s at 10 s, see docs/local-cluster.md).
			DNS01CheckRetryPeriod: 2 * time.Second,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		// HTTP-01 through an HTTPRoute as well as an Ingress: the `gateway` edge. The
		// factory refuses to start when the Gateway API CRDs are not installed.
		ConfigOptions: controller.ConfigOptions{EnableGatewayAPI: true},
	})
	if err != nil {
		return err
	}
	shared, err := factory.Build()
	if err != nil {
		return err
	}

	registered := controller.Known()
	started := make(map[string]controller.Interface, len(loops))
	for _, name := range loops {
		construct, ok := registered[name]
		if !ok {
			return fmt.Errorf("control loop %q is not registered", name)
		}
		if started[name], err = construct(factory); err != nil {
			return fmt.Errorf("control loop %s: %w", name, err)
		}
	}
	// Each constructor asked the shared informer factories for the informers it
	// needs; only now can they start.
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	shared.GWShared.Start(ctx.Done())

	log := logf.FromContext(ctx)
	for _, name := range loops {
		loop := started[name]
		group.Go(func() error {
			log.V(logf.InfoLevel).Info("starting control loop", "controller", name)
			return loop.Run(workers, ctx)
		})
	}
	return group.Wait()
}

// verbosityFlag adds klog's -v (log verbosity) to fs, without klog's other flags.
func verbosityFlag(fs *flag.FlagSet) {
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	v := klogFlags.Lookup("v")
	fs.Var(v.Value, v.Name, v.Usage)
}
