//go:build !race

package node

// gcScaleDivisor shrinks the GC scale test under the race detector, which
// makes it ten times slower: the full size runs without -race.
const gcScaleDivisor = 1
