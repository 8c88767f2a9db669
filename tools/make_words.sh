#!/bin/sh
# tools/make_words.sh - regenerate data/words/*.txt (the data of examples/classify.c)
# from Debian's word-list packages:
#
#   apt-get install wamerican wfrench wngerman wspanish witalian
#   sh tools/make_words.sh            # writes data/words/{en,fr,de,es,it}.txt
#   sh tools/make_words.sh 3500       # another number of words per language
#                                     # (above 3500 Italian runs out of short words)
#
# What it does, and why:
#   1. Keeps words of lowercase letters only, 3 letters or more. Capitalised
#      entries are proper names and abbreviations in English, French, Spanish
#      and Italian; in German every noun is capitalised, so there one leading
#      capital is allowed and then lowered. Lowering German nouns matters: a
#      capital first letter would give German away without looking at the word.
#      Apostrophes and hyphens go too (English "'s", French "aujourd'hui"), for
#      the same reason.
#   2. Drops every word that is in two lists or more ("hotel", "piano"): such a
#      word has no single right answer.
#   3. Takes N words per language (3000 unless given) with the same length
#      profile in every language, chosen by a hash of the word rather than by
#      a random generator, so the same packages give the same files on any
#      machine, with any awk. The files are sorted (LC_ALL=C) so that a
#      regeneration diffs cleanly.
# The output is UTF-8, one word a line, after a few '#' lines that name the
# source package, its copyright holder and the licence (classify.c skips them).
# data/words/README.md says more about each licence; COPYING.en and
# COPYING.GPL-3 there are the texts the lists' licences ask to ship along.
set -eu

N=${1:-3000}
DICT=${DICT:-/usr/share/dict}
OUT=${OUT:-data/words}

# lang code, file under $DICT, Debian package
LISTS="en:american-english:wamerican fr:french:wfrench de:ngerman:wngerman es:spanish:wspanish it:italian:witalian"

for spec in $LISTS; do
    f=$(echo "$spec" | cut -d: -f2)
    p=$(echo "$spec" | cut -d: -f3)
    if [ ! -r "$DICT/$f" ]; then
        echo "make_words.sh: $DICT/$f is missing: apt-get install $p" >&2
        exit 1
    fi
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
mkdir -p "$OUT"

# 1. filter and lower (C.UTF-8 so that [[:lower:]] and \L know accented letters)
for spec in $LISTS; do
    l=$(echo "$spec" | cut -d: -f1)
    f=$(echo "$spec" | cut -d: -f2)
    re='[[:lower:]]\{3,\}'
    [ "$l" != de ] || re='[[:upper:]]\?[[:lower:]]\{2,\}[[:lower:]]'
    LC_ALL=C.UTF-8 grep -x "$re" "$DICT/$f" | LC_ALL=C.UTF-8 sed 's/.*/\L&/' | LC_ALL=C sort -u > "$TMP/$l.all"
done

# 2. words in more than one list
cat "$TMP"/*.all | LC_ALL=C sort | LC_ALL=C uniq -d > "$TMP/shared"

# The notice at the top of each file (checked against each package's
# /usr/share/doc/<package>/copyright).
notice() {
    v=$(dpkg-query -W -f='${Version}' "$2" 2>/dev/null || echo "?")
    echo "# $3 words sampled by tools/make_words.sh from Debian's $2 $v ($DICT/$4)."
    case $1 in
    en) echo "# SCOWL (http://wordlist.sourceforge.net/), Copyright 2000-2011 Kevin Atkinson and others."
        echo "# Free to use, copy, modify and distribute with the notices of COPYING.en (see README.md)." ;;
    fr) echo "# Copyright 1989 Paul Leyland <pcl@ox.ac.uk>; Debian: https://salsa.debian.org/gpernot/wfrench"
        echo "# GNU GPL version 2 or later; this sample is distributed under GPL version 3 (COPYING.GPL-3)." ;;
    de) echo "# igerman98 (https://www.j3e.de/ispell/igerman98/), Copyright 1999-2016 Bjoern Jacke <bjoern@j3e.de>."
        echo "# GNU GPL version 2 or 3; this sample is distributed under GPL version 3 (COPYING.GPL-3)." ;;
    es) echo "# Debian's wspanish word list; its copyright file says: \"Word list license: Public Domain.\"" ;;
    it) echo "# Copyright 1997-2018 Davide G. M. Salvetti; Debian: https://salsa.debian.org/salve/witalian"
        echo "# GNU GPL version 3 or later; this sample is distributed under GPL version 3 (COPYING.GPL-3)." ;;
    esac
    echo "# Lowercase, one word a line; words also found in another language's list are left out."
}

# 3. N words per language with the same number of words of each length in
#    every language (PROFILE: words of 3, 4, ... 16 letters per 3000), so that
#    length alone says nothing about the language: the full lists differ a
#    lot (French and German lists are mostly long inflected forms and
#    compounds), and a model would learn that instead of the letters. The
#    profile is flatter than the lists' own so that short words, the hard
#    ones, are not rare; every list has enough words of every length for
#    N = 3000. Within a length the words with the smallest hash are taken:
#    a polynomial hash of the bytes mod 2^31 - 1 (exact in awk's doubles),
#    then multiplied by 48271 twice (the MINSTD step): without that mixing,
#    words that differ in their last letter get nearby hashes and the sample
#    comes in clumps of one stem's inflections. A hash rather than a random
#    generator, so the same packages give the same files with any awk.
PROFILE="50 200 300 300 300 300 300 300 300 250 200 120 60 20"

for spec in $LISTS; do
    l=$(echo "$spec" | cut -d: -f1)
    f=$(echo "$spec" | cut -d: -f2)
    p=$(echo "$spec" | cut -d: -f3)
    case $l in en) name=English;; fr) name=French;; de) name=German;; es) name=Spanish;; it) name=Italian;; esac
    notice "$l" "$p" "$name" "$f" > "$OUT/$l.txt"
    LC_ALL=C comm -23 "$TMP/$l.all" "$TMP/shared" |
    LC_ALL=C awk 'BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
        { h = 7; letters = 0
          for (i = 1; i <= length($0); i++) {
              c = ord[substr($0, i, 1)]
              h = (h * 257 + c) % 2147483647
              if (c < 128 || c >= 192) letters++ # UTF-8: all but the continuation bytes
          }
          h = (h * 48271) % 2147483647; h = (h * 48271) % 2147483647
          print h, letters, $0 }' |
    LC_ALL=C sort -k1,1n -k3,3 |
    LC_ALL=C awk -v N="$N" -v P="$PROFILE" '
        BEGIN { n = split(P, w, " "); for (L = 3; L < 3 + n; L++) quota[L] = int(w[L - 2] * N / 3000 + 0.5) }
        ($2 in quota) && taken[$2] < quota[$2] { taken[$2]++; print $3 }' |
    LC_ALL=C sort >> "$OUT/$l.txt"
    got=$(grep -vc '^#' "$OUT/$l.txt")
    echo "$OUT/$l.txt: $got words, $(wc -c < "$OUT/$l.txt") bytes (from $(wc -l < "$TMP/$l.all") after filtering)"
    [ "$got" -ge "$N" ] || echo "  (fewer than $N: the list has too few words of some length for the profile)"
done
echo "words in more than one list, dropped: $(wc -l < "$TMP/shared")"

# The licence texts the lists ask to travel with them.
cp /usr/share/doc/wamerican/copyright "$OUT/COPYING.en"
cp /usr/share/common-licenses/GPL-3 "$OUT/COPYING.GPL-3"
echo "$OUT/COPYING.en, $OUT/COPYING.GPL-3: copied from /usr/share/doc/wamerican/copyright and /usr/share/common-licenses/GPL-3"
