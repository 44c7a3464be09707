// Package logtest holds what every orderedlog.Log backend is tested with, so
// the backends are held to one definition of the seam's semantics.
package logtest
