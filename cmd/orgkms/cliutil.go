package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
)

// cliEnv is what a command may use.
type cliEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

// loadConfig is config.Load for the server commands (serve, migrate,
// master-key, hsm). A configuration it cannot use is a mistake in how the
// command was started, so it exits as a usage error, with what to fix.
func loadConfig(cmdPath string, src config.Sources) (config.Config, error) {
	cfg, err := config.Load(src)
	if err == nil {
		return cfg, nil
	}
	if errors.Is(err, fs.ErrNotExist) && src.Path != "" {
		return cfg, usageError{fmt.Sprintf("config file %s does not exist", src.Path),
			"give the path of the JSON config file with --config; \"" + cmdPath + " --help\" lists the settings"}
	}
	return cfg, usageError{err.Error(), "fix the setting named above; \"" + cmdPath + " --help\" lists the settings and their ORGKMS_* variables"}
}

// hinted attaches hint lines to an error.
type hinted struct {
	err   error
	hints []string
	// exact: these hints say all there is (a flag to fix); the generic
	// hint of the API error's code would only repeat them less precisely.
	exact bool
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func withHint(err error, hints ...string) error {
	if len(hints) == 0 {
		return err
	}
	return hinted{err: err, hints: hints}
}

// printError prints err as one "orgkms: error:" line and its hints.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "orgkms: error: %s\n", oneLine(errorText(err)))
	for _, s := range errorHints(err) {
		fmt.Fprintf(w, "orgkms: hint: %s\n", oneLine(s))
	}
}

// errorHints returns the hints of err: those attached to it, then those of
// its API error code.
func errorHints(err error) []string {
	var hints []string
	var ue usageError
	if errors.As(err, &ue) && ue.hint != "" {
		hints = append(hints, ue.hint)
	}
	var h hinted
	if errors.As(err, &h) {
		hints = append(hints, h.hints...)
		if h.exact {
			return hints
		}
	}
	return append(hints, apiHints(err)...)
}

// errorText is the error line of err. A fault.Error of this process (the
// server's start-up, a local check) reads as its customer message: its
// underlying error is for logs, and would repeat the reason in other words.
func errorText(err error) string {
	text := err.Error()
	var ae *client.Error
	if fe := fault.As(err); fe != nil && !errors.As(err, &ae) {
		msg := fault.Message(fe)
		if fe.Op != "" {
			msg = fe.Op + ": " + msg
		}
		text = strings.Replace(text, fe.Error(), msg, 1)
	}
	return text
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }

// commandName is the command's path without "orgkms ", e.g. "org create".
func commandName(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), c.Root().Name()), " ")
}

func helpHint(c *cobra.Command) string {
	return "run \"" + c.CommandPath() + " --help\" for usage"
}

// flagError turns pflag's parse errors into usage errors.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	// pflag quotes strconv's own words ("strconv.ParseInt: parsing ...");
	// say what the value must be instead.
	if i := strings.Index(msg, ": strconv."); i >= 0 {
		why := ": want a whole number"
		if strings.Contains(msg[i:], "out of range") {
			why = ": out of range"
		}
		msg = msg[:i] + why
	}
	return usageError{msg, helpHint(c)}
}

// groupArgs accepts any arguments on a command that only groups others, so
// that groupRun can report an unknown command with its own message.
func groupArgs(*cobra.Command, []string) error { return nil }

// groupRun runs a command that groups others: any argument that reached it
// is not one of its commands.
func groupRun(c *cobra.Command, args []string) error {
	name := commandName(c)
	if name != "" {
		name += " "
	}
	if len(args) == 0 {
		return usageError{"missing " + name + "command", "run \"" + c.CommandPath() + " --help\" for the list of commands"}
	}
	what := "run \"" + c.CommandPath() + " --help\" for the list of commands"
	if c == c.Root() {
		what = "run \"orgkms help\" for the list of commands"
	}
	return withHint(usageError{fmt.Sprintf("unknown %scommand %q", name, args[0]), what}, suggest(c, args[0])...)
}

// suggest returns a "did you mean" hint for a mistyped command name.
func suggest(c *cobra.Command, typed string) []string {
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(typed); len(s) > 0 {
		return []string{"did you mean \"" + c.CommandPath() + " " + s[0] + "\"?"}
	}
	return nil
}

// argNames checks that a command gets exactly the named positional
// arguments.
func argNames(names ...string) cobra.PositionalArgs {
	return argRange(len(names), len(names), names...)
}

// argRange checks that a command gets between min and max positional
// arguments (max < 0: no limit); names describe them for the message.
func argRange(min, max int, names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) >= min && (max < 0 || len(args) <= max) {
			// Every named argument is an ID or a name: an empty one
			// (an unset shell variable) would change the request's path.
			for i, a := range args {
				if a == "" && len(names) > 0 {
					name := names[len(names)-1]
					if i < len(names) {
						name = names[i]
					}
					return usageError{fmt.Sprintf("%s: %s is empty", commandName(c), name), "give a non-empty " + name + "; " + helpHint(c)}
				}
			}
			return nil
		}
		var want string
		switch {
		case max == 0:
			want = "takes no arguments"
		case min == max && min == 1:
			want = "takes 1 argument, " + strings.Join(names, " ")
		case min == max:
			want = fmt.Sprintf("takes %d arguments, %s", min, strings.Join(names, " "))
		default:
			want = "takes arguments " + strings.Join(names, " ")
		}
		got := "got " + strconv.Itoa(len(args))
		if len(args) > 0 && max >= 0 && len(args) > max {
			got += fmt.Sprintf(" (%q is extra)", args[max])
		}
		return usageError{commandName(c) + " " + want + "; " + got, helpHint(c)}
	}
}

// printHelp is the help of every command, on stdout.
func printHelp(c *cobra.Command, _ []string) {
	w := c.OutOrStdout()
	use := c.UseLine()
	if c.HasAvailableLocalFlags() && !strings.Contains(use, "[flags]") {
		use += " [flags]"
	}
	fmt.Fprintf(w, "Usage: %s\n\n", use)
	desc := c.Long
	if desc == "" {
		desc = strings.ToUpper(c.Short[:1]) + c.Short[1:] + "."
	}
	fmt.Fprintln(w, strings.TrimRight(desc, "\n"))
	if c.HasAvailableSubCommands() {
		printCommands(w, c)
		fmt.Fprintf(w, "\nRun \"%s <command> --help\" for the flags of a command.\n", c.CommandPath())
	}
	if fs := c.LocalNonPersistentFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}

// printCommands lists c's commands, by group.
func printCommands(w io.Writer, c *cobra.Command) {
	section := func(title string, cmds []*cobra.Command) {
		if len(cmds) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, s := range cmds {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name(), s.Short)
		}
		tw.Flush()
	}
	inGroup := func(id string) []*cobra.Command {
		var out []*cobra.Command
		for _, s := range c.Commands() {
			if s.GroupID == id && (s.IsAvailableCommand() || s.Name() == "help") {
				out = append(out, s)
			}
		}
		return out
	}
	for _, g := range c.Groups() {
		section(g.Title, inGroup(g.ID))
	}
	title := "Commands:"
	if len(c.Groups()) > 0 {
		title = "Other:"
	}
	section(title, inGroup(""))
}

// orgFlag adds --org, defaulting to $ORGKMS_ORG when it runs.
func orgFlag(c *cobra.Command) *string {
	org := c.Flags().String("org", "", "org `ID` (default $ORGKMS_ORG)")
	_ = c.RegisterFlagCompletionFunc("org", completeOrgs)
	return org
}

// completionClient is the client of shell completion: one quick attempt.
func completionClient() (*client.Client, error) {
	return client.New(client.Config{MaxRetries: -1, Timeout: 5 * time.Second})
}

// completeOrgs completes --org from the server: every org for an operator,
// the token's own org otherwise.
func completeOrgs(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := completionClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var ids []string
	if page, err := c.ListOrgs(cmd.Context(), "", 1000); err == nil {
		for _, o := range page.Orgs {
			ids = append(ids, o.ID)
		}
	} else if w, err := c.WhoAmI(cmd.Context()); err == nil && w.Org != "" {
		ids = []string{w.Org}
	}
	return withPrefix(ids, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeKeys completes a data key name of the org given by --org (or
// $ORGKMS_ORG).
func completeKeys(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	org, _ := cmd.Flags().GetString("org")
	if org = orgOrEnv(org); org == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := completionClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ks, err := c.ListKeys(cmd.Context(), org)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, k := range ks {
		names = append(names, k.Name)
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func withPrefix(words []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// orgOrEnv returns the --org value or $ORGKMS_ORG.
func orgOrEnv(org string) string {
	if org == "" {
		return os.Getenv("ORGKMS_ORG")
	}
	return org
}

// requireOrg returns the org of --org or $ORGKMS_ORG, or a usage error.
func requireOrg(org string) (string, error) {
	if o := orgOrEnv(org); o != "" {
		return o, nil
	}
	return "", usageError{"--org is required", "give --org ORG or set ORGKMS_ORG"}
}

// format is the --format flag (and its hidden alias --json) of a command
// that prints.
type format struct {
	value  string
	asJSON bool
}

// addFormat adds --format json|table and the hidden --json to c, checked
// before c runs.
func addFormat(c *cobra.Command) *format {
	f := &format{}
	c.Flags().StringVar(&f.value, "format", "", "output `format`: json (the API's shape) or table (default: text for people)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "same as --format json")
	_ = c.Flags().MarkHidden("json")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]cobra.Completion{"json", "table"}, cobra.ShellCompDirectiveNoFileComp))
	prev := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		if _, err := f.get(); err != nil {
			return err
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
	return f
}

// get returns "", "json" or "table".
func (f *format) get() (string, error) {
	switch {
	case f.asJSON && f.value != "" && f.value != "json":
		return "", usageError{"--json and --format " + f.value + " contradict each other", "give one of them"}
	case f.asJSON:
		return "json", nil
	}
	switch f.value {
	case "", "json", "table":
		return f.value, nil
	}
	return "", usageError{fmt.Sprintf("unknown --format %q", f.value), "use --format json or --format table"}
}

// emit prints v as JSON or as a table, or calls text for the default
// output.
func (f *format) emit(env *cliEnv, v any, text func(io.Writer) error) error {
	switch v2, _ := f.get(); v2 {
	case "json":
		return printJSON(env.stdout, v)
	case "table":
		return printTable(env.stdout, v)
	}
	return text(env.stdout)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// printTable prints v, a value of the API's types, as an aligned table: a
// list (a slice, or a struct with a slice field and nothing else set) as
// one row per item; any other struct as one row per field, followed by a
// table of each list it holds. Column and field names are the JSON names.
func printTable(w io.Writer, v any) error {
	rv := reflect.Indirect(reflect.ValueOf(v))
	if rv.Kind() == reflect.Slice {
		return printRows(w, rv)
	}
	if rv.Kind() == reflect.Map {
		tw := table(w)
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\n", k.String(), cell(rv.MapIndex(k)))
		}
		return tw.Flush()
	}
	if rv.Kind() != reflect.Struct {
		_, err := fmt.Fprintln(w, cell(rv))
		return err
	}
	var lists []reflect.Value
	var listNames []string
	tw := table(w)
	var kv func(prefix string, sv reflect.Value)
	kv = func(prefix string, sv reflect.Value) {
		for _, f := range reflect.VisibleFields(sv.Type()) {
			name := jsonName(f)
			if name == "" || f.Anonymous {
				continue
			}
			fv := sv.FieldByIndex(f.Index)
			switch {
			case fv.Kind() == reflect.Slice && isStructSlice(fv.Type()):
				if fv.Len() > 0 {
					lists = append(lists, fv)
					listNames = append(listNames, prefix+name)
				}
			case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct && fv.Type().Elem() != reflect.TypeFor[time.Time]():
				if !fv.IsNil() {
					kv(prefix+name+".", fv.Elem())
				}
			case strings.Contains(f.Tag.Get("json"), ",omitempty") && fv.IsZero():
				// absent from the JSON too
			default:
				if c := cell(fv); c != "" {
					fmt.Fprintf(tw, "%s\t%s\n", prefix+name, c)
				}
			}
		}
	}
	kv("", rv)
	if err := tw.Flush(); err != nil {
		return err
	}
	onlyList := len(lists) == 1 && isListBody(rv)
	for i, l := range lists {
		if !onlyList {
			fmt.Fprintf(w, "\n%s:\n", listNames[i])
		}
		if err := printRows(w, l); err != nil {
			return err
		}
	}
	if len(lists) == 0 && isListBody(rv) {
		for _, f := range reflect.VisibleFields(rv.Type()) {
			if f.Type.Kind() == reflect.Slice && isStructSlice(f.Type) {
				return printRows(w, rv.FieldByIndex(f.Index)) // the header of an empty list
			}
		}
	}
	return nil
}

// isListBody reports whether sv is a list response: one slice of structs
// and scalar fields only (such as next_after).
func isListBody(sv reflect.Value) bool {
	n := 0
	for _, f := range reflect.VisibleFields(sv.Type()) {
		if f.Type.Kind() == reflect.Slice && isStructSlice(f.Type) {
			n++
		}
	}
	return n == 1 && sv.NumField() <= 2
}

func isStructSlice(t reflect.Type) bool {
	e := t.Elem()
	if e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	return e.Kind() == reflect.Struct && e != reflect.TypeFor[time.Time]()
}

// printRows prints a slice of structs as a table with a header row.
func printRows(w io.Writer, sv reflect.Value) error {
	et := sv.Type().Elem()
	if et.Kind() == reflect.Pointer {
		et = et.Elem()
	}
	if et.Kind() != reflect.Struct {
		for i := range sv.Len() {
			fmt.Fprintln(w, cell(sv.Index(i)))
		}
		return nil
	}
	var cols []reflect.StructField
	for _, f := range reflect.VisibleFields(et) {
		if jsonName(f) != "" && !f.Anonymous && !(f.Type.Kind() == reflect.Slice && isStructSlice(f.Type)) {
			cols = append(cols, f)
		}
	}
	// Rows first, so that a column empty in every row (such as a token's
	// secret, sent only on creation) can be left out.
	rows := make([][]string, sv.Len())
	used := make([]bool, len(cols))
	for i := range rows {
		item := reflect.Indirect(sv.Index(i))
		for j, f := range cols {
			c := cell(item.FieldByIndex(f.Index))
			used[j] = used[j] || c != ""
			rows[i] = append(rows[i], orDefault(c, "-"))
		}
	}
	keep := func(j int) bool { return used[j] || len(rows) == 0 }
	tw := table(w)
	var head []string
	for j, f := range cols {
		if keep(j) {
			head = append(head, strings.ToUpper(jsonName(f)))
		}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		var out []string
		for j, c := range r {
			if keep(j) {
				out = append(out, c)
			}
		}
		fmt.Fprintln(tw, strings.Join(out, "\t"))
	}
	return tw.Flush()
}

func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// cell renders one value of a table: times in RFC 3339, bytes in base64,
// lists comma-separated, nested objects as JSON; "" for nil and zero
// values of pointers.
func cell(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		if x.IsZero() {
			return ""
		}
		return x.Format(time.RFC3339)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case string:
		return x
	}
	switch v.Kind() {
	case reflect.Slice:
		var parts []string
		for i := range v.Len() {
			parts = append(parts, cell(v.Index(i)))
		}
		return strings.Join(parts, ",")
	case reflect.Map:
		var parts []string
		for _, k := range v.MapKeys() {
			parts = append(parts, k.String()+"="+cell(v.MapIndex(k)))
		}
		slices.Sort(parts)
		return strings.Join(parts, " ")
	case reflect.Struct:
		b, _ := json.Marshal(v.Interface())
		return string(b)
	}
	return fmt.Sprint(v.Interface())
}

// newClient returns an API client configured from the environment.
func newClient() (*client.Client, error) {
	c, err := client.New(client.Config{})
	if err != nil {
		if os.Getenv("ORGKMS_ADDR") != "" {
			return nil, withHint(err, "set ORGKMS_ADDR to the server's base URL, e.g. http://127.0.0.1:8200 (orgkms dev writes it to DATA/dev.env)")
		}
		return nil, withHint(err, "start a server with \"orgkms dev\", then \"source DATA/dev.env\"")
	}
	return c, nil
}

// apiHints returns the hints of an API error: the hint of its code in the
// error table (fault), or, when the call never reached orgkms, what to
// check. Hints that need to know the call (which object was missing) are
// attached by missing.
func apiHints(err error) []string {
	var e *client.Error
	if !errors.As(err, &e) {
		var ue *url.Error // a client call that never reached the server, not the server's own database
		if errors.As(err, &ue) && errors.Is(err, syscall.ECONNREFUSED) {
			return []string{"is orgkms running? start one with \"orgkms dev\" and check ORGKMS_ADDR"}
		}
		return nil
	}
	kind := fault.KindFromCode(e.Code)
	if kind.Code() != e.Code {
		return nil // a code this CLI does not know, e.g. http_502 from a proxy
	}
	var hints []string
	if h := kind.Hint(); h != "" {
		hints = append(hints, h)
	}
	if kind.Retryable() && e.RetryAfter > 0 {
		hints = append(hints, "the server asks to wait "+e.RetryAfter.String()+" before retrying")
	}
	return hints
}

// fieldInputs names, for request fields whose flag is not simply the field
// with dashes, what gives them on the command line.
var fieldInputs = map[string]string{
	"roles":      "--role",
	"tenant_id":  "--tenant",
	"plaintext":  "the input (stdin or --in)",
	"ciphertext": "the input (stdin or --in)",
	"password":   "the password on stdin",
	"id":         "the ID argument",
}

// fieldHint says which flag (or input) of cmd gave the request field that
// an invalid_argument or payload_too_large error names: the error table
// speaks of API fields, the CLI user typed flags.
func fieldHint(cmd *cobra.Command, err error) []string {
	var e *client.Error
	if cmd == nil || !errors.As(err, &e) || e.Field == "" || (e.Code != string(client.CodeInvalidArgument) && e.Code != string(client.CodePayloadTooLarge)) {
		return nil
	}
	what := fieldInputs[e.Field]
	if f := cmd.Flags().Lookup(strings.ReplaceAll(e.Field, "_", "-")); f != nil && (f.Changed || !givenAsField(cmd, e.Field)) {
		what = "--" + f.Name
	} else if givenAsField(cmd, e.Field) {
		what = "--field " + e.Field
	}
	if what == "" {
		return nil
	}
	return []string{"fix " + what + "; \"" + cmd.CommandPath() + " --help\" describes it"}
}

// givenAsField reports whether the request field name came from a
// --field NAME=VALUE of cmd (orgkms cmk configure).
func givenAsField(cmd *cobra.Command, name string) bool {
	vals, err := cmd.Flags().GetStringArray("field")
	if err != nil {
		return false
	}
	for _, v := range vals {
		if n, _, _ := strings.Cut(v, "="); strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// withFieldHint attaches the field hint of err (see fieldHint) in place of
// the generic hint of its code.
func withFieldHint(cmd *cobra.Command, err error) error {
	hints := fieldHint(cmd, err)
	if len(hints) == 0 {
		return err
	}
	return hinted{err: err, hints: hints, exact: true}
}

// missing explains a not_found error of a call about org (and, when key
// is not "", its data key): it asks the server which of the two does not
// exist and names it, with the command that lists what does. An org or
// key refused by its deletion lifecycle gets the command that restores it,
// with their names (lifecycleHints). Other errors are returned as they are.
func missing(env *cliEnv, c *client.Client, err error, org, key string) error {
	if org == "" {
		return err
	}
	if !errors.Is(err, client.CodeNotFound) {
		return lifecycleHints(err, org, key)
	}
	orgHint := fmt.Sprintf("org %q does not exist; \"orgkms org list\" lists the orgs", org)
	if key == "" {
		return withHint(err, orgHint)
	}
	_, oerr := c.GetOrg(env.ctx, org)
	switch {
	case oerr == nil:
		return withHint(err, fmt.Sprintf("org %s has no key %q; \"orgkms key list --org %s\" lists its keys, \"orgkms key create --org %s %s\" creates it", org, key, org, org, key))
	case errors.Is(oerr, client.CodeNotFound):
		return withHint(err, orgHint)
	}
	return withHint(err, fmt.Sprintf("check that org %q exists and has a key %q", org, key))
}

// wrapText breaks s into lines of at most width characters, at spaces.
func wrapText(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		switch {
		case i == 0:
		case n+1+len(w) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
