// Command pulumi-tfgen-random writes schema.json and bridge-metadata.json
// ("pulumi-tfgen-random schema --out DIR"), which pulumi-resource-random embeds.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"journal-iac/toolchain/random/provider"
)

func main() { tfgen.Main("random", provider.Info(nil)) }
