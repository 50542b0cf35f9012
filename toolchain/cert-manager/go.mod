// Pins the cert-manager release whose CustomResourceDefinitions (deploy/crds/*.yaml in the
// module) toolchain/install-kubernetes.sh installs for the local cluster; nothing is built
// from it. go.sum holds the module's hashes, so the download is verified.
module journal-iac/toolchain/cert-manager

go 1.24

require github.com/cert-manager/cert-manager v1.21.2
