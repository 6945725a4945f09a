//go:build !linux

package main

import (
	"errors"
	"os"
)

// isTerminal is false where the terminal is not supported: credentials then come
// from flags, the environment or the saved login, never from a prompt.
func isTerminal(*os.File) bool { return false }

func readHidden(*os.File) (string, error) { return "", errors.New("no terminal support") }
