package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

const webhookEventTypes = "cmk.state_changed, cmk.rotation_followed, job.failed, deletion.scheduled, ping"

func webhookCmd(env *cliEnv) *cobra.Command {
	needOrg := func(org string) (string, error) {
		o := orgOrEnv(org)
		if o == "" {
			return "", usageError{"--org is required", "give --org ORG (or set ORGKMS_ORG)"}
		}
		return o, nil
	}
	notFound := func(env *cliEnv, c *client.Client, err error, org, id string) error {
		if !errors.Is(err, client.CodeNotFound) {
			return err
		}
		if _, oerr := c.GetOrg(env.ctx, org); errors.Is(oerr, client.CodeNotFound) {
			return withHint(err, fmt.Sprintf("org %q does not exist; \"orgkms org list\" lists the orgs", org))
		}
		return withHint(err, fmt.Sprintf("org %s has no webhook %q; \"orgkms webhook list --org %s\" lists them", org, id, org))
	}

	create := &cobra.Command{
		Use:   "create --org ORG --url URL [--event TYPE]...",
		Short: "register a webhook and print its signing secret once (org admin)",
		Long: "Registers a receiver of the org's signed notifications and prints its secret once.\n" +
			"Event types: " + webhookEventTypes + "\n" +
			"(default: every type). The URL must be https:// with a public host. Every request\n" +
			"carries X-Orgkms-Timestamp and X-Orgkms-Signature: v1=HEX, the HMAC-SHA256 with\n" +
			"the secret over TIMESTAMP.BODY; refuse timestamps more than 5 minutes old.",
		Args: argNames(),
	}
	org := orgFlag(create)
	url := create.Flags().String("url", "", "the receiver's https:// `URL`")
	evs := create.Flags().StringSlice("event", nil, "an event `type` to receive (repeat, or comma-separate; default every type)")
	desc := create.Flags().String("description", "", "free `text`")
	createFmt := addFormat(create)
	create.RunE = func(*cobra.Command, []string) error {
		o, err := needOrg(*org)
		if err != nil {
			return err
		}
		if *url == "" {
			return usageError{"--url is required", "e.g. orgkms webhook create --org acme --url https://hooks.example.com/orgkms --event cmk.state_changed"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		w, err := c.CreateWebhook(env.ctx, o, client.CreateWebhookRequest{URL: *url, Description: *desc, Events: *evs})
		if err != nil {
			switch {
			case errors.Is(err, client.CodeWebhookURLInsecure):
				return withHint(err, "give an https:// URL")
			case errors.Is(err, client.CodeWebhookAddressForbidden):
				return withHint(err, "the receiver must have a public address; the operator can allow private ones with webhooks.allow_private_addresses")
			}
			return missing(env, c, err, o, "")
		}
		fmt.Fprintln(env.stderr, "orgkms: store the secret now: it is not shown again")
		return createFmt.emit(env, w, func(out io.Writer) error {
			_, err := fmt.Fprintf(out, "webhook %s for %s (events %s)\n%s\n", w.ID, w.URL, eventsText(w.Events), w.Secret)
			return err
		})
	}

	list := &cobra.Command{Use: "list --org ORG", Short: "list an org's webhooks (never their secrets)", Args: argNames()}
	lorg := orgFlag(list)
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		o, err := needOrg(*lorg)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ws, err := c.ListWebhooks(env.ctx, o)
		if err != nil {
			return missing(env, c, err, o, "")
		}
		if ws == nil {
			ws = []client.Webhook{}
		}
		return listFmt.emit(env, client.WebhookList{Webhooks: ws}, func(out io.Writer) error {
			tw := table(out)
			fmt.Fprintln(tw, "ID\tURL\tEVENTS\tCREATED\tDESCRIPTION")
			for _, w := range ws {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.ID, w.URL, eventsText(w.Events), w.CreatedAt.Format(time.RFC3339), w.Description)
			}
			return tw.Flush()
		})
	}

	del := &cobra.Command{Use: "delete --org ORG ID", Short: "delete a webhook with its pending deliveries and history", Args: argNames("ID")}
	dorg := orgFlag(del)
	delFmt := addFormat(del)
	del.RunE = func(_ *cobra.Command, args []string) error {
		o, err := needOrg(*dorg)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		if err := c.DeleteWebhook(env.ctx, o, args[0]); err != nil {
			return notFound(env, c, err, o, args[0])
		}
		return delFmt.emit(env, apiStatus{Status: "deleted"}, func(out io.Writer) error {
			_, err := fmt.Fprintf(out, "deleted webhook %s\n", args[0])
			return err
		})
	}

	test := &cobra.Command{
		Use:   "test --org ORG ID",
		Short: "send a signed ping now and report the result",
		Long:  "Sends a signed ping to the webhook and prints the receiver's status and latency.\nExits 1 when the ping failed (the reason is printed); the ping is kept in the history.",
		Args:  argNames("ID"),
	}
	torg := orgFlag(test)
	testFmt := addFormat(test)
	test.RunE = func(_ *cobra.Command, args []string) error {
		o, err := needOrg(*torg)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		d, err := c.TestWebhook(env.ctx, o, args[0])
		if err != nil {
			return notFound(env, c, err, o, args[0])
		}
		if err := testFmt.emit(env, d, func(out io.Writer) error {
			a := d.History[len(d.History)-1]
			_, err := fmt.Fprintf(out, "ping %s: status %d in %.1f ms%s\n", d.State, a.StatusCode, a.LatencyMS, orEmpty(": ", a.Error))
			return err
		}); err != nil {
			return err
		}
		if d.State != "delivered" {
			return withHint(fmt.Errorf("ping to webhook %s failed: %s", args[0], d.LastError),
				fmt.Sprintf("check the receiver; \"orgkms webhook deliveries --org %s %s\" shows every attempt", o, args[0]))
		}
		return nil
	}

	rotate := &cobra.Command{
		Use:   "rotate-secret --org ORG ID",
		Short: "give a webhook a new secret (printed once; the old one signs too for 5 minutes)",
		Args:  argNames("ID"),
	}
	rorg := orgFlag(rotate)
	rotateFmt := addFormat(rotate)
	rotate.RunE = func(_ *cobra.Command, args []string) error {
		o, err := needOrg(*rorg)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		s, err := c.RotateWebhookSecret(env.ctx, o, args[0])
		if err != nil {
			return notFound(env, c, err, o, args[0])
		}
		fmt.Fprintln(env.stderr, "orgkms: store the secret now: it is not shown again")
		return rotateFmt.emit(env, s, func(out io.Writer) error {
			_, err := fmt.Fprintf(out, "new secret of webhook %s (the previous one signs too until %s)\n%s\n", args[0], s.PreviousSecretUntil.Format(time.RFC3339), s.Secret)
			return err
		})
	}

	deliveries := &cobra.Command{
		Use:   "deliveries --org ORG ID",
		Short: "show a webhook's delivery history: event, attempt, status, latency, error, next retry",
		Args:  argNames("ID"),
	}
	horg := orgFlag(deliveries)
	limit := deliveries.Flags().Int("limit", 50, "at most this many deliveries (newest first)")
	delivFmt := addFormat(deliveries)
	deliveries.RunE = func(_ *cobra.Command, args []string) error {
		o, err := needOrg(*horg)
		if err != nil {
			return err
		}
		if *limit < 1 || *limit > 500 {
			return usageError{"--limit must be from 1 to 500", "e.g. --limit 20"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ds, err := c.WebhookDeliveries(env.ctx, o, args[0], *limit)
		if err != nil {
			return notFound(env, c, err, o, args[0])
		}
		if ds == nil {
			ds = []client.WebhookDelivery{}
		}
		return delivFmt.emit(env, client.WebhookDeliveryList{Deliveries: ds}, func(out io.Writer) error {
			tw := table(out)
			fmt.Fprintln(tw, "EVENT\tTYPE\tSTATE\tATTEMPT\tTIME\tSTATUS\tLATENCY\tNEXT RETRY\tERROR")
			for _, d := range ds {
				if len(d.History) == 0 {
					next := "-"
					if d.NextAttemptAt != nil {
						next = d.NextAttemptAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t%s\t\n", d.EventID, d.EventType, d.State, next)
					continue
				}
				for _, a := range d.History {
					next := "-"
					if a.NextRetryAt != nil {
						next = a.NextRetryAt.Format(time.RFC3339)
					}
					status := "-"
					if a.StatusCode != 0 {
						status = strconv.Itoa(a.StatusCode)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.1fms\t%s\t%s\n", d.EventID, d.EventType, d.State, a.Attempt, a.Time.Format(time.RFC3339), status, a.LatencyMS, next, a.Error)
				}
			}
			return tw.Flush()
		})
	}
	return group("webhook <command>", "register, test and delete an org's webhooks; show their deliveries", create, list, del, test, rotate, deliveries)
}

func eventsText(evs []string) string {
	if len(evs) == 0 {
		return "all"
	}
	return strings.Join(evs, ",")
}

func orEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
