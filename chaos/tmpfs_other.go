//go:build !linux

package chaos

import "errors"

func mountTmpfs(string) (func(), error) {
	return nil, errors.New("tmpfs needs Linux")
}
