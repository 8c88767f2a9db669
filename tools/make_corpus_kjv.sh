#!/bin/sh
# Regenerates data/kjv_slice.txt, the corpus of `make demo`, from Debian's
# King James Bible: Genesis 1:1 to Exodus 20:26 (from the Creation to the Ten
# Commandments, 2078 verses, 276 KB), one verse per line, without the
# book/chapter:verse references (a character-level model would spend its
# capacity learning to count otherwise).
#
#   sudo apt-get install bible-kjv      # the reader; pulls in bible-kjv-text (the data)
#   sh tools/make_corpus_kjv.sh         # writes data/kjv_slice.txt
#
# The text lives compressed in /usr/lib/bible.data (package bible-kjv-text);
# only the package's own reader, `bible` (package bible-kjv), decodes it.
# Output is deterministic: running this again gives the same bytes.
set -eu
cd "$(dirname "$0")/.."
out=data/kjv_slice.txt

if ! command -v bible >/dev/null 2>&1; then
    echo "make_corpus_kjv.sh: the 'bible' program is missing: apt-get install bible-kjv" >&2
    exit 1
fi

# -f prints one verse per line as "Ge1:1 In the beginning ..." or "Exo20:26
# Neither shalt ..."; strip the reference.
LC_ALL=C COLUMNS=100000 bible -f gen1:1-exo20:26 |
    LC_ALL=C sed -n 's/^[A-Z][a-z]*[0-9][0-9]*:[0-9][0-9]* //p' > "$out.tmp"

lines=$(wc -l < "$out.tmp")
if [ "$lines" -ne 2078 ]; then  # Genesis has 1533 verses, Exodus 1-20 has 545
    echo "make_corpus_kjv.sh: expected 2078 verses, got $lines" >&2
    rm -f "$out.tmp"
    exit 1
fi
mv "$out.tmp" "$out"
echo "wrote $out: $lines verses, $(wc -c < "$out") bytes"
