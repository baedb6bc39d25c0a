package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/store"
)

// samlKeyCommand writes out the SAML SP key pair the gateway generated for
// an IdP, so that the same pair can be configured with sp_cert. Moving from
// the generated key to a configured one is then no change at all for the
// IdP, rather than a cutover it must follow at once, and later rotations
// take the overlapping route of two sp_cert lines (docs/operations.md).
//
// It reads the store only, so a bbolt store must be a stopped instance's,
// or a copy restored from a backup. The admin API has no endpoint for one
// key pair, but its backup (GET /sso/backup) holds every key of the store:
// the admin endpoint is as sensitive as the keys.
func samlKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "saml-key <idp> --out <file> --store <store>",
		Short: "Writes the SAML SP key pair generated for an IdP to a file, for sp_cert",
		Long: `Writes the SAML SP key pair the gateway generated for the IdP (on its first
start without sp_cert) to a new file, mode 0600: the private key and the
certificate, in PEM. Configure it as the same pair with
  sp_cert <file> <file>
and the IdP sees no change. It reads --store directly.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			out, _ := c.Flags().GetString("out")
			raw, _ := c.Flags().GetString("store")
			switch {
			case out == "":
				return errors.New("--out names the file to write the key pair to")
			case raw == "":
				return errors.New("saml-key reads the store itself: give --store (a stopped instance's store, or one restored from a backup; the admin API has no endpoint for a single key)")
			}
			spec, err := parseStore(c.ErrOrStderr(), "--store", raw)
			if err != nil {
				return err
			}
			spec.ReadOnly = true
			db, err := openExistingOffline(c.Context(), spec)
			if err != nil {
				return err
			}
			defer db.Close()
			var pemData []byte
			err = db.View(c.Context(), func(tx store.Tx) (err error) {
				pemData, err = tx.LoadOrStoreSecret(saml.SPKeySecretName(args[0]), nil) // nil: only look
				return err
			})
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("the store holds no generated SP key for IdP %q (one is generated on a SAML IdP's first start without sp_cert)", termtext.Line(args[0]))
			}
			if err != nil {
				return err
			}
			if _, err := saml.DecodeKeyPairPEM(pemData); err != nil {
				return fmt.Errorf("the SP key of IdP %q in the store: %w", termtext.Line(args[0]), err)
			}
			// O_EXCL: never over another file, which may be a key in use.
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = f.Write(pemData)
			if err == nil {
				// On disk before "wrote": the operator may configure it
				// at once, and discard the store it came from.
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(out) // no half-written key file
				return err
			}
			syncDirOf(out)
			arg := out
			if strings.ContainsAny(arg, " \t\"{}#") {
				arg = strconv.Quote(arg) // one Caddyfile token
			}
			if asJSON(c) {
				return printJSON(c, struct {
					IdP    string `json:"idp"`
					File   string `json:"file"`
					SPCert string `json:"sp_cert"` // the Caddyfile line that uses it
				}{args[0], out, "sp_cert " + arg + " " + arg})
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote the SP key pair of IdP %s to %s; configure it with:\n  sp_cert %s %s\n",
				termtext.Line(args[0]), termtext.Line(out), termtext.Line(arg), termtext.Line(arg))
			return nil
		},
	}
	cmd.Flags().String("out", "", "The file to write the key pair to (created, mode 0600; never overwritten)")
	return cmd
}
