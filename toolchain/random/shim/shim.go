// Package shim exposes terraform-provider-random's framework provider.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"

	tfrandom "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the Terraform plugin-framework provider for random.
func NewProvider() provider.Provider { return tfrandom.New() }
