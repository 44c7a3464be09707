package raft

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// A Raft log command is:
//
//	version     1 byte (commandVersion)
//	request id  16 bytes, random per Propose, the same on every retry
//	batch       the codec encoding of the ops, commit time stamped by the
//	            leader that submits it
//
// The commit time travels in the command, so every node's Batch.Time is the
// same instant, and the FSM never reads a clock.
const (
	commandVersion = 1
	requestIDLen   = 16
	commandHeader  = 1 + requestIDLen
)

type requestID [requestIDLen]byte

func newRequestID() requestID {
	var id requestID
	rand.Read(id[:]) // never fails (crypto/rand)
	return id
}

func encodeCommand(id requestID, batch []byte) []byte {
	cmd := make([]byte, commandHeader, commandHeader+len(batch))
	cmd[0] = commandVersion
	copy(cmd[1:], id[:])
	return append(cmd, batch...)
}

var errBadCommand = errors.New("orderedlog/raft: malformed log command")

// decodeCommand splits a command; the batch aliases cmd.
func decodeCommand(cmd []byte) (requestID, []byte, error) {
	var id requestID
	if len(cmd) < commandHeader {
		return id, nil, fmt.Errorf("%w: %d bytes", errBadCommand, len(cmd))
	}
	if cmd[0] != commandVersion {
		return id, nil, fmt.Errorf("%w: version %d (this runed knows %d; upgrade it)", errBadCommand, cmd[0], commandVersion)
	}
	copy(id[:], cmd[1:commandHeader])
	return id, cmd[commandHeader:], nil
}
