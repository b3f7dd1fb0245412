package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one of ssegate's subcommands.
type command struct {
	name    string
	args    string // what follows the name, for the usage line
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order the usage shows them.
func commands() []command {
	return []command{
		{"run", "[-config PATH]", "run the proxy (the default command)", runRun},
		{"validate", "[-config PATH]", "check a config; print every problem, with file:line:col", runValidate},
		{"publish", "[-server URL] [-header 'Name: value'] SUBJECT [DATA | -file PATH | -]", "publish one message to NATS", runPublish},
		{"check", "[-nats URL -subject SUBJECT] [-header 'Name: value'] [-wait 40s] URL", "self-test a deployed route: status, HTTP version, buffering, keepalives, resume", runCheck},
		{"reload", "[-admin URL] [-header 'Name: value']", "make the running proxy read its config again (or send it SIGHUP)", runReload},
		{"health", "[-admin URL] [-ready]", "exit 0 if the running proxy is alive (with -ready: ready for clients)", runHealth},
		{"version", "", "print the version", runVersion},
		{"help", "[COMMAND]", "show this, or a command's flags", nil},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("ssegate turns backend feeds into Server-Sent Events.\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %s\n        %s\n", strings.TrimSpace("ssegate "+c.name+" "+c.args), c.summary)
	}
	b.WriteString("\nThe config path defaults to $SSEGATE_CONFIG, then ssegate.hcl.\n")
	b.WriteString("`ssegate help COMMAND` or `ssegate COMMAND -h` shows a command's flags.\n")
	return b.String()
}

func run(args []string, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) == 0 {
			fmt.Fprint(stdout, usage())
			return 0
		}
		name, args = args[0], []string{"-h"}
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ssegate: unknown command %q\n\n%s", name, usage())
	return 2
}

// newFlags makes the flag set of a command. Its -h prints the command's
// usage line and flags, with their defaults, to stdout; a mistake prints
// them to stderr.
func newFlags(name string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ssegate "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are printed by parseFlags
	fs.Usage = func() {}
	for _, c := range commands() {
		if c.name == name {
			fs.Usage = func() { printUsage(fs, c, stdout) }
		}
	}
	return fs
}

func printUsage(fs *flag.FlagSet, c command, w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("ssegate "+c.name+" "+c.args), c.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// parseFlags parses a command's flags: done reports that the command is
// over (-h asked for, or a mistake), with its exit code.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		fmt.Fprintf(stderr, "see: %s -h\n", fs.Name())
		return 2, true
	}
	return 0, false
}

// configFlag adds -config, defaulting to $SSEGATE_CONFIG, then ssegate.hcl.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", defaultConfigPath(), "config file; the default is $SSEGATE_CONFIG when set")
}

func defaultConfigPath() string {
	if p := os.Getenv("SSEGATE_CONFIG"); p != "" {
		return p
	}
	return "ssegate.hcl"
}

// noConfig explains a config that is not there: where ssegate looked and
// how to point it at one.
func noConfig(path string) error {
	from := "given with -config"
	switch {
	case os.Getenv("SSEGATE_CONFIG") == path:
		from = "from $SSEGATE_CONFIG"
	case path == "ssegate.hcl":
		from = "the default, as $SSEGATE_CONFIG is not set"
	}
	return fmt.Errorf("no config file at %s (%s); point at one with -config PATH or SSEGATE_CONFIG=PATH, for example -config config.example.hcl from a checkout", path, from)
}

// parseOnlyFlags is parseFlags for a command that takes no arguments:
// flags stop at the first argument, so "ssegate -config f validate" would
// otherwise run the proxy.
func parseOnlyFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, done bool) {
	if code, done := parseFlags(fs, args, stderr); done {
		return code, true
	}
	if fs.NArg() == 0 {
		return 0, false
	}
	fmt.Fprintf(stderr, "%s: unexpected argument %q; the command comes first, then its flags\nsee: %s -h\n", fs.Name(), fs.Arg(0), fs.Name())
	return 2, true
}
