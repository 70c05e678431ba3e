//go:build linux || darwin || freebsd

package embedded

import "syscall"

// freeBytes returns the space an unprivileged process may still use on
// the filesystem holding dir.
func freeBytes(dir string) (free uint64, known bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
