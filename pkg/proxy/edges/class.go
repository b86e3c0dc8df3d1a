package edges

// CodeClasses are the values of the code_class label, by Class.
var CodeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Class returns the index in CodeClasses of an HTTP status code. Codes out
// of 100-599 (none should reach here) count as 5xx: a proxy that answers
// nonsense failed.
func Class(code int) int {
	c := code/100 - 1
	if c < 0 || c > 4 {
		return 4
	}
	return c
}
