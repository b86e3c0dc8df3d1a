package main

import (
	"context"
	"fmt"
)

// notBuilt is the Run of a subcommand whose configuration exists but whose
// feature belongs to a later issue. It never pretends to work.
func notBuilt(name string) func(context.Context) error {
	return func(context.Context) error {
		return fmt.Errorf("%s is not built yet", name)
	}
}
