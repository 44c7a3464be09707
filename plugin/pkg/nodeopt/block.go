package nodeopt

import (
	"fmt"

	"github.com/coredns/caddy"

	"github.com/runenet/runenet/node/nodeconfig"
)

// Block parses the rest of a directive's block, after its name: no
// arguments on the directive line, node options into cfg (nil: the
// directive takes none), every other option checked against arity (how many
// arguments it takes; -n: at least n) and handed to set, and the directive
// once per server block. Errors carry the Corefile's file and line.
func Block(c *caddy.Controller, cfg *nodeconfig.Config, arity map[string]int, set func(opt string, args []string) error) error {
	name := c.Val()
	if args := c.RemainingArgs(); len(args) > 0 {
		return c.Errf("%s takes no arguments, got %q", name, args)
	}
	for c.NextBlock() {
		opt := c.Val()
		args := c.RemainingArgs()
		if cfg != nil {
			if ok, err := Set(cfg, opt, args); ok {
				if err != nil {
					return c.Err(err.Error())
				}
				continue
			}
		}
		want, ok := arity[opt]
		switch {
		case !ok:
			return c.Errf("unknown property %q", opt)
		case want < 0 && len(args) < -want:
			return c.Errf("%s takes at least %d argument(s), got %d", opt, -want, len(args))
		case want >= 0 && len(args) != want:
			return c.Errf("%s takes %d argument(s), got %d", opt, want, len(args))
		}
		if err := set(opt, args); err != nil {
			return c.Errf("%s: %v", opt, err)
		}
	}
	if c.Next() {
		return c.Errf("%s can only be used once per server block", name)
	}
	return nil
}

// OnOff reads an on|off option argument, naming it when it is neither.
func OnOff(arg string) (bool, error) {
	switch arg {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: want on or off", arg)
}
