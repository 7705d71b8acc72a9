package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/client"
)

func cmdUser(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "user", "create --email EMAIL --role ROLE[,ROLE] [--org ORG] | list [--org ORG]")
	if err != nil {
		return err
	}
	switch verb {
	case "create":
		fs := newFlags(env, "user create", "user create --email EMAIL --role ROLE[,ROLE] [--org ORG] [--name NAME]",
			"Creates a console user and reads the password (at least 12 characters) from the first\n"+
				"line of stdin. Org users hold admin, key_admin and/or member (admin plus key_admin\n"+
				"gives Settings → Security); without --org the user is a platform operator.\n"+
				"Needs an operator token, or an admin token of the org.")
		email := fs.String("email", "", "the user's email (sign-in name)")
		roles := fs.String("role", "", "comma-separated roles")
		org := fs.String("org", "", "the user's org (empty: a platform operator)")
		name := fs.String("name", "", "display name")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		if *email == "" || *roles == "" {
			return usageError{"--email and --role are required", "e.g. echo 'a long passphrase' | orgkms user create --org acme --email alice@acme.example --role admin,key_admin"}
		}
		line, _ := bufio.NewReader(env.stdin).ReadString('\n') // a missing final newline is fine
		password := strings.TrimRight(line, "\r\n")
		if password == "" {
			return usageError{"no password on stdin", "pipe the password: printf '%s\\n' \"$PASSWORD\" | orgkms user create ..."}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		u, err := c.CreateUser(env.ctx, *org, client.CreateUserRequest{Email: *email, Name: *name, Roles: strings.Split(*roles, ","), Password: password})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, u)
		}
		where := "platform operator"
		if u.Org != "" {
			where = "org " + u.Org
		}
		fmt.Fprintf(env.stdout, "created user %s (%s, roles %s); sign in at %s/console/\n", u.Email, where, strings.Join(u.Roles, ","), c.Addr())
		return nil
	case "list":
		fs := newFlags(env, "user list", "user list [--org ORG]", "Lists console users of an org (or, without --org, platform operators).")
		org := fs.String("org", "", "org ID")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		us, err := c.ListUsers(env.ctx, *org)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, us)
		}
		tw := table(env.stdout)
		fmt.Fprintln(tw, "EMAIL\tNAME\tROLES\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Email, u.Name, strings.Join(u.Roles, ","), u.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usageError{"unknown user command " + strconv.Quote(verb), "orgkms user create|list"}
}
