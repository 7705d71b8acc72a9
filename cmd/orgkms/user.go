package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

func userCmd(env *cliEnv) *cobra.Command {
	create := &cobra.Command{
		Use:   "create --email EMAIL --role ROLE[,ROLE]",
		Short: "create a console user (password on stdin)",
		Long: "Creates a console user and reads the password (at least 12 characters) from the first\n" +
			"line of stdin. Org users hold admin, key_admin and/or member (admin plus key_admin\n" +
			"gives Settings → Security); without --org the user is a platform operator.\n" +
			"Needs an operator token, or an admin token of the org.",
		Args: argNames(),
	}
	email := create.Flags().String("email", "", "the user's `email` (sign-in name)")
	roles := create.Flags().String("role", "", "comma-separated `roles`")
	org := create.Flags().String("org", "", "the user's org (empty: a platform operator)")
	name := create.Flags().String("name", "", "display `name`")
	createFmt := addFormat(create)
	create.RunE = func(*cobra.Command, []string) error {
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
			return platformUsersHint(missing(env, c, err, *org, ""), *org)
		}
		return createFmt.emit(env, u, func(w io.Writer) error {
			where := "platform operator"
			if u.Org != "" {
				where = "org " + u.Org
			}
			_, err := fmt.Fprintf(w, "created user %s (%s, roles %s); sign in at %s/console/\n", u.Email, where, strings.Join(u.Roles, ","), c.Addr())
			return err
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "list console users of an org (or, without --org, platform operators)",
		Args:  argNames(),
	}
	lorg := list.Flags().String("org", "", "org `ID`")
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		us, err := c.ListUsers(env.ctx, *lorg)
		if err != nil {
			return platformUsersHint(missing(env, c, err, *lorg, ""), *lorg)
		}
		return listFmt.emit(env, client.UserList{Users: us}, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "EMAIL\tNAME\tROLES\tCREATED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Email, u.Name, strings.Join(u.Roles, ","), u.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
	return group("user <command>", "create and list console users (password on stdin)", create, list)
}

// platformUsersHint explains a refused user command without --org: it
// meant the platform's operators, which an org's token may not see. The
// user commands do not read ORGKMS_ORG (no --org means the platform), so
// an org admin with ORGKMS_ORG set is told to give it.
func platformUsersHint(err error, org string) error {
	if org != "" || !errors.Is(err, client.CodePermissionDenied) {
		return err
	}
	hint := "without --org this is about the platform's operators, which needs an operator token; give --org ORG for the users of an org"
	if o := os.Getenv("ORGKMS_ORG"); o != "" {
		hint = fmt.Sprintf("without --org this is about the platform's operators, which needs an operator token; give --org %s for the users of org %s", o, o)
	}
	return hinted{err: err, hints: []string{hint}, exact: true}
}
