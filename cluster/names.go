package cluster

// dns1123LabelProblem says what is wrong with s as a DNS-1123 label (the form
// of service, namespace and node names, since they become DNS names), or ""
// when nothing is.
func dns1123LabelProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 63:
		return "must be at most 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return "must consist of lower-case letters, digits and '-', and start and end with a letter or digit"
		}
	}
	return ""
}

// NodeNameProblem says what is wrong with s as a node name, or "" when
// nothing is: instances name their node, so it must be a DNS label.
func NodeNameProblem(s string) string { return dns1123LabelProblem(s) }
