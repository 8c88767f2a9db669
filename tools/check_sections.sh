#!/usr/bin/env bash
# tools/check_sections.sh [FILE] - attn.h's "SECTIONS (each uses only the ones above it)".
#
# The implementation part (after #ifdef ATTN_IMPLEMENTATION) is cut into sections by
# banner comments ("/* ====" line, "   N. Name" line). An unnumbered banner ("Context")
# belongs to the numbered section before it; code before the first banner is section 0.
# Fails (exit 1) listing every place where a section refers to a function or macro whose
# definition is in a later section:
#     attn.h:LINE: section N (name) calls FUNC, defined in later section M
# else prints "sections: ok (K sections, F functions)". Exit 2: the file could not be read
# or parsed (no numbered banners, unbalanced braces).
#   Defined: a file-scope function definition (the name before the last top-level "(" of
#            a signature that ends ") {"), or a #define. A prototype defines nothing, so a
#            forward declaration does not make a call to a later section legal.
#   Used:    any mention of such a name outside comments and string/char literals: a call,
#            a function pointer in a table, a macro. Not after "." or "->" (a struct member),
#            nor the name a file-scope prototype declares. #if blocks count as all present.
# bash + awk (POSIX, mawk is enough): CI machines are bare Debian.
set -u
if [ $# -eq 0 ]; then cd "$(dirname "$0")/.." || exit 2; fi # default: the repository's attn.h
FILE=${1:-attn.h}
[ -r "$FILE" ] || { echo "check_sections: cannot read $FILE" >&2; exit 2; }

# The file is read twice: pass 1 collects the definitions, pass 2 checks every use.
awk -v label="$FILE" '
# s with comments and literals blanked out; incom carries an open /* */ to the next line.
function strip(s,   out, i, n, c, q) {
    out = ""; n = length(s); i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (incom) {
            if (substr(s, i, 2) == "*/") { incom = 0; i += 2; out = out " " } else i++
        } else if (substr(s, i, 2) == "/*") { incom = 1; i += 2
        } else if (substr(s, i, 2) == "//") { break
        } else if (c == "\"" || c == "\047") { # a literal: to the same quote, over escapes
            q = c; i++
            while (i <= n && substr(s, i, 1) != q) i += (substr(s, i, 1) == "\\") ? 2 : 1
            i++; out = out q q
        } else { out = out c; i++ }
    }
    return out
}
# Split s into tokens tok[1..ntok]: identifiers, numbers (so 1e5f is no identifier "e5f"),
# "->", and every other character on its own.
function tokenize(s) {
    ntok = 0
    while (match(s, /[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_.]*|->|[^ \t]/)) {
        tok[++ntok] = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
    }
}
function isname(t) { return t ~ /^[A-Za-z_]/ }

FNR == 1 { pass++; impl = 0; incom = 0; cont = 0; depth = 0; sec = 0; banner = 0 }
!impl { if ($0 ~ /^#ifdef ATTN_IMPLEMENTATION/) impl = 1; next }

# A banner: its title line sets the section. Numbered: "N. Name (aside)"; else no change.
banner { banner = 0
    if (match($0, /^ *[0-9]+\. /)) {
        title = substr($0, RLENGTH + 1); sec = substr($0, 1, RLENGTH) + 0
        sub(/ *\(.*$/, "", title); sub(/ +$/, "", title); secname[sec] = title
        if (pass == 1) nsec++
    }
}
!incom && /^\/\* =====/ { banner = 1 }

{   code = strip($0)
    pp = cont || code ~ /^[ \t]*#/   # a preprocessor line, or a continuation of one
    cont = pp && $0 ~ /\\$/
    tokenize(code)
}

# Pass 1. Macros: the first #define wins (alternatives under #if are in one section).
pass == 1 && pp {
    if (match(code, /^[ \t]*#[ \t]*define[ \t]+[A-Za-z_][A-Za-z0-9_]*/)) {
        t = substr(code, RSTART, RLENGTH); sub(/.*[ \t]/, "", t)
        if (!(t in dsec)) dsec[t] = sec
    }
    next  # braces in macro bodies are not file structure
}
# Functions: follow the braces; at file scope remember the name before each top-level
# "(" and decide at the "{" or ";" that ends the declaration.
pass == 1 {
    for (i = 1; i <= ntok; i++) {
        t = tok[i]
        if (depth > 0) { if (t == "{") depth++; else if (t == "}" && --depth == 0) { cand = ""; haseq = 0 } }
        else if (t == "(") { if (paren++ == 0) { cand = isname(prev) ? prev : ""; cline = FNR } }
        else if (t == ")") paren--
        else if (t == "=") haseq = 1
        else if (t == "{" || t == ";") {
            fn = (paren == 0 && prev == ")" && cand != "" && !haseq)
            if (fn && t == "{" && !(cand in dsec)) { dsec[cand] = sec; nfun++ }
            if (fn && t == ";") proto[cand, cline] = 1
            if (t == "{") depth++
            cand = ""; haseq = 0
        }
        prev = t
    }
    next
}

# Pass 2: every mention of a defined name from an earlier section than its definition.
{
    for (i = 1; i <= ntok; i++) {
        t = tok[i]
        if (isname(t) && (t in dsec) && dsec[t] > sec && !((t, FNR) in proto) && \
            tok[i - 1] != "." && tok[i - 1] != "->" && !((FNR, t) in seen)) {
            seen[FNR, t] = 1; bad++
            printf "%s:%d: section %d (%s) calls %s, defined in later section %d\n", \
                label, FNR, sec, secname[sec], t, dsec[t]
        }
    }
}

END {
    if (!nsec) { print "check_sections: no numbered section banners after #ifdef ATTN_IMPLEMENTATION in " label > "/dev/stderr"; exit 2 }
    if (depth != 0 || paren != 0) { print "check_sections: unbalanced braces or parentheses in " label > "/dev/stderr"; exit 2 }
    if (bad) { printf "sections: %d violation(s) of \"each uses only the ones above it\"\n", bad; exit 1 }
    printf "sections: ok (%d sections, %d functions)\n", nsec, nfun
}
' "$FILE" "$FILE"
