package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func nodeCmd(env *cliEnv) *cobra.Command {
	list := &cobra.Command{Use: "list", Short: "list the orgkms nodes on the database and their state (operator)",
		Long: "Lists every orgkms node registered on the database: ID, address, version, start, last heartbeat and state:\n" +
			"live, gone (no heartbeat within cluster.node_timeout) or stopped (shut down cleanly).",
		Args: argNames()}
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		l, err := c.ListNodes(env.ctx)
		if err != nil {
			return err
		}
		return listFmt.emit(env, l, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "ID\tADDRESS\tVERSION\tSTARTED\tLAST HEARTBEAT\tSTATE")
			for _, n := range l.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Address, n.Version, n.StartedAt.UTC().Format(time.RFC3339),
					n.LastHeartbeat.UTC().Format(time.RFC3339), n.State)
			}
			return tw.Flush()
		})
	}
	return group("node <command>", "list the orgkms nodes sharing the database", list)
}
