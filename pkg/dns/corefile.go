package dns

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file reads a Corefile the way CoreDNS's Caddyfile lexer and parser
// do, but keeps byte offsets so that the patcher can edit the text in place
// and leave every byte it does not own alone. The real parser
// (github.com/coredns/caddy/caddyfile) drops comments and offsets, and it
// expands imports by reading files, so it cannot serve here; the tests check
// that both agree.

// token is one Caddyfile word.
type token struct {
	text      string
	start     int  // offset of the first byte (the opening quote when quoted)
	end       int  // offset after the last byte
	line      int  // 1-based line of the first byte
	endLine   int  // line of the last byte (quoted words may span lines)
	quoted    bool // written in double quotes
	lineFirst bool // first token on its line
}

// comment is a '#' comment, from the '#' to the end of its line.
type comment struct {
	text      string
	start     int
	line      int
	lineStart int  // offset of the start of its line
	alone     bool // only whitespace precedes it on its line
}

// lexed is a tokenised Corefile.
type lexed struct {
	tokens   []token
	comments []comment
}

// lex splits text into tokens and comments with the rules of the Caddyfile
// lexer: words are separated by white space; a word that starts with '"'
// runs to the next unescaped '"'; '#' outside quotes starts a comment to the
// end of the line, even in the middle of a word; a leading byte order mark
// is skipped. Unlike CoreDNS, which quietly accepts a quote left open at the
// end of the file, lex reports it: the rest of the file would be one word.
func lex(text string) (*lexed, error) {
	out := &lexed{}
	line, lineStart, lastTokenLine := 1, 0, 0
	i := 0
	if strings.HasPrefix(text, "\uFEFF") {
		i = len("\uFEFF")
	}
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\n':
			line++
			lineStart = i + 1
			i += size
		case unicode.IsSpace(r):
			i += size
		case r == '#':
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text)
			} else {
				end += i
			}
			out.comments = append(out.comments, comment{
				text:      strings.TrimRight(text[i:end], "\r"),
				start:     i,
				line:      line,
				lineStart: lineStart,
				alone:     strings.TrimSpace(text[lineStart:i]) == "",
			})
			i = end
		case r == '"':
			t := token{start: i, line: line, quoted: true, lineFirst: lastTokenLine != line}
			next, newlines, lastNL, val, ok := scanQuoted(text, i+1)
			if !ok {
				return nil, fmt.Errorf("line %d: quote opened here is never closed", t.line)
			}
			line += newlines
			if newlines > 0 {
				lineStart = lastNL + 1
			}
			t.text, t.end, t.endLine = val, next, line
			out.tokens = append(out.tokens, t)
			lastTokenLine = line
			i = next
		default:
			// An unquoted word runs to white space or a comment.
			j := i
			for j < len(text) {
				r, size := utf8.DecodeRuneInString(text[j:])
				if unicode.IsSpace(r) || r == '#' {
					break
				}
				j += size
			}
			out.tokens = append(out.tokens, token{
				text: text[i:j], start: i, end: j, line: line, endLine: line,
				lineFirst: lastTokenLine != line,
			})
			lastTokenLine = line
			i = j
		}
	}
	return out, nil
}

// scanQuoted reads a quoted word whose body starts at i. It returns the
// offset after the closing quote, the newlines inside, the offset of the
// last of them, and the word with escaped quotes unescaped (the Caddyfile
// lexer unescapes only \").
func scanQuoted(text string, i int) (next, newlines, lastNL int, val string, ok bool) {
	var b strings.Builder
	escaped := false
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if !escaped {
			if r == '\\' {
				escaped = true
				continue
			}
			if r == '"' {
				return i, newlines, lastNL, b.String(), true
			}
		}
		if r == '\n' {
			newlines++
			lastNL = i - 1
		}
		if escaped && r != '"' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		escaped = false
	}
	return i, newlines, lastNL, "", false
}

// directive is one directive of a server block with its arguments and, when
// it has one, its nested block.
type directive struct {
	name  token
	args  []token // every token after the name, nested braces included
	start int     // offset of the name
	end   int     // offset after the last token
}

// serverBlock is a server block (or a snippet) at the top level.
type serverBlock struct {
	keys       []token
	open       token // the "{"
	close      token // the matching "}"
	directives []directive
}

// topImport is an import directive at the top level, between blocks.
type topImport struct {
	args []token
}

// corefile is the structure of a parsed Corefile.
type corefile struct {
	text    string
	lex     *lexed
	blocks  []serverBlock
	imports []topImport
}

// parseCorefile checks that text is a Corefile CoreDNS can read (keys, then
// a block in braces; braces balanced; no '}' where CoreDNS rejects it) and
// returns its structure. It refuses what it cannot edit safely, such as the
// brace-less single-server form.
func parseCorefile(text string) (*corefile, error) {
	lx, err := lex(text)
	if err != nil {
		return nil, err
	}
	cf := &corefile{text: text, lex: lx}
	toks := lx.tokens
	for i := 0; i < len(toks); {
		t := toks[i]
		if t.text == "import" && t.lineFirst && !t.quoted {
			imp := topImport{}
			for i++; i < len(toks) && !toks[i].lineFirst; i++ {
				imp.args = append(imp.args, toks[i])
			}
			cf.imports = append(cf.imports, imp)
			continue
		}
		if t.text == "{" || t.text == "}" {
			return nil, fmt.Errorf("line %d: unexpected %q outside a server block", t.line, t.text)
		}
		blk := serverBlock{}
		// Keys run to the end of the line, or on when a key ends with ','.
		for i < len(toks) && toks[i].text != "{" {
			k := toks[i]
			if len(blk.keys) > 0 && k.lineFirst && !strings.HasSuffix(blk.keys[len(blk.keys)-1].text, ",") {
				break
			}
			if k.text == "}" {
				return nil, fmt.Errorf("line %d: unexpected \"}\" among the keys of a server block", k.line)
			}
			blk.keys = append(blk.keys, k)
			i++
		}
		if i >= len(toks) || toks[i].text != "{" {
			return nil, fmt.Errorf("line %d: server block %q has no opening brace; blocks without braces are not supported", t.line, t.text)
		}
		blk.open = toks[i]
		i++
		next, err := parseBody(toks, i, &blk)
		if err != nil {
			return nil, err
		}
		i = next
		cf.blocks = append(cf.blocks, blk)
	}
	return cf, nil
}

// parseBody reads directives from toks[i] up to the '}' that closes blk and
// returns the index after it.
func parseBody(toks []token, i int, blk *serverBlock) (int, error) {
	for i < len(toks) {
		t := toks[i]
		if t.text == "}" {
			blk.close = t
			return i + 1, nil
		}
		if t.text == "{" {
			return 0, fmt.Errorf("line %d: unexpected \"{\" where a directive was expected", t.line)
		}
		d := directive{name: t, start: t.start, end: t.end}
		nesting := 0
		for i++; i < len(toks); i++ {
			a := toks[i]
			if a.text == "{" {
				nesting++
			} else if a.lineFirst && nesting == 0 {
				break
			} else if a.text == "}" {
				if nesting == 0 {
					return 0, fmt.Errorf("line %d: unexpected \"}\" after directive %q (a closing brace must start its own line)", a.line, t.text)
				}
				nesting--
			}
			d.args = append(d.args, a)
			d.end = a.end
		}
		if nesting > 0 {
			return 0, fmt.Errorf("line %d: the block of directive %q is never closed", t.line, t.text)
		}
		blk.directives = append(blk.directives, d)
	}
	return 0, fmt.Errorf("line %d: the server block opened here is never closed", blk.open.line)
}

// addresses returns the zones and ports of a block's keys.
func (b serverBlock) addresses() []address {
	var out []address
	for _, k := range b.keys {
		for _, part := range strings.Split(k.text, ",") {
			if part != "" {
				out = append(out, parseAddress(part))
			}
		}
	}
	return out
}

// address is a server block key: [scheme://]zone[:port].
type address struct {
	scheme string // "" or "dns" for plain DNS
	zone   string // lower case, without the trailing dot; "." stays "."
	port   string // "" when the default
}

func parseAddress(s string) address {
	a := address{}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		a.scheme, s = strings.ToLower(scheme), rest
	}
	if s != "." && !strings.HasPrefix(s, "[") {
		if z, p, ok := strings.Cut(s, ":"); ok {
			s, a.port = z, p
		}
	} else if strings.HasPrefix(s, ".:") {
		s, a.port = ".", s[2:]
	}
	if s != "." {
		s = strings.TrimSuffix(s, ".")
	}
	a.zone = strings.ToLower(s)
	return a
}

// plainDNS reports whether the address serves plain DNS (not TLS, gRPC,
// HTTPS or QUIC).
func (a address) plainDNS() bool { return a.scheme == "" || a.scheme == "dns" }
