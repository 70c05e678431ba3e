package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/kjernejournal/kjernejournal/internal/audit"
	"github.com/kjernejournal/kjernejournal/internal/envflag"
	"github.com/kjernejournal/kjernejournal/internal/store"
)

// Audit runs the usage-log subcommands: "audit verify".
func Audit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return envflag.Usagef("audit: name a subcommand: verify")
	}
	fs := newFlagSet("audit verify", "Checks the hash chain of the usage log (AuditEvent) from the first\nrecord to the last and names the first broken link.", stderr)
	sf := addStoreFlags(fs)
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	st, err := sf.open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", sf.describe(), err)
	}
	defer st.Close()
	n, err := verifyChain(ctx, st)
	if err != nil {
		fmt.Fprintf(stdout, "usage log BROKEN after %d good records: %v\n", n, err)
		return err
	}
	fmt.Fprintf(stdout, "usage log intact: %d records, chain verified to the head\n", n)
	return nil
}

// verifyChain checks every record in chain order and that the last one is
// the head the store keeps (records cut off at the end show there).
func verifyChain(ctx context.Context, st store.AuditLog) (int, error) {
	headSeq, headHash, err := st.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	var scanErr error
	count := 0
	seq := iter.Seq2[int, []byte](func(yield func(int, []byte) bool) {
		i := 0
		scanErr = st.ScanAudit(ctx, 1, func(r store.AuditRecord) error {
			count++
			if !yield(i, r.Body) {
				return errStop
			}
			i++
			return nil
		})
	})
	last, err := audit.VerifyFrom("", seq)
	if scanErr != nil && !errors.Is(scanErr, errStop) {
		return count, scanErr
	}
	if err != nil {
		return count - 1, err
	}
	if int64(count) != headSeq || last != headHash {
		return count, fmt.Errorf("the chain ends at record %d (hash %.12s…) but the head is record %d (hash %.12s…): records are missing at the end", count, last, headSeq, headHash)
	}
	return count, nil
}

var errStop = errors.New("stop")
