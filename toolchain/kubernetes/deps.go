//go:build tools

// Package deps records the packages that the provider's main package (copied
// from the provider module at build time by toolchain/install-pulumi.sh, together
// with its generator) imports, so that `go mod tidy` keeps go.mod and go.sum
// complete. It is never compiled.
package deps

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
	_ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)
