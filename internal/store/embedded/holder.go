package embedded

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// bbolt's lock (flock) tells a second process only that the file is
// taken, after its timeout. So the process that holds the lock writes
// who it is next to the database, and a process that cannot get the lock
// reads it back to name the holder. The file is written only while the
// lock is held, so a stale one (left by a killed process) is overwritten
// before anyone can read it as the holder.

// holderPath is the file next to the database naming the process that
// has it open.
func holderPath(dbPath string) string { return dbPath + ".holder" }

// LockedError is Open's error when another process holds the database
// file. PID is 0 when the holder did not say who it is (an older build,
// or the moment between taking the lock and writing the holder file).
type LockedError struct {
	Path    string
	PID     int
	Command string
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("embedded store: %s is in use by another process", e.Path)
	}
	return fmt.Sprintf("embedded store: %s is in use by process %d (%s)", e.Path, e.PID, e.Command)
}

// Unwrap keeps errors.Is(err, bolt.ErrTimeout) true, as before.
func (e *LockedError) Unwrap() error { return bolt.ErrTimeout }

// writeHolder records this process as the holder. Failing to write it
// only makes a later lock error less helpful, so it is not an error.
func writeHolder(dbPath string) {
	cmd := strings.Join(os.Args, " ")
	_ = os.WriteFile(holderPath(dbPath), []byte(strconv.Itoa(os.Getpid())+"\n"+cmd+"\n"), 0o600)
}

// removeHolder removes the holder file if it still names this process.
func removeHolder(dbPath string) {
	if pid, _ := readHolder(dbPath); pid == os.Getpid() {
		_ = os.Remove(holderPath(dbPath))
	}
}

func readHolder(dbPath string) (pid int, command string) {
	b, err := os.ReadFile(holderPath(dbPath))
	if err != nil {
		return 0, ""
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, ""
	}
	return pid, strings.TrimSpace(rest)
}

// lockedError is the LockedError of the database at dbPath, naming the
// holder if it said who it is.
func lockedError(dbPath string) error {
	pid, cmd := readHolder(dbPath)
	return &LockedError{Path: dbPath, PID: pid, Command: cmd}
}
