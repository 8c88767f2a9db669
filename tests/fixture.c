/* tests/fixture.c - the reader of the PyTorch fixtures in tests/fixtures/ (text
   records "NAME COUNT" followed by COUNT numbers; see tools/gen_*_fixtures.py),
   shared by the test files that compare with PyTorch. A fixture is looked up
   in $ATTN_TEST_DIR/fixtures, next to this source file, then tests/fixtures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static char *fx_read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (len + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = (char *)realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = 0;
    *size = len;
    return buf;
}

/* dir of __FILE__ (with its trailing separator), "" when it has none */
static void fx_source_dir(char *out, size_t cap) {
    const char *file = __FILE__, *slash = NULL, *p;
    size_t n;
    for (p = file; *p; p++)
        if (*p == '/' || *p == '\\') slash = p;
    n = slash ? (size_t)(slash - file) + 1 : 0;
    if (n >= cap) n = 0;
    memcpy(out, file, n);
    out[n] = 0;
}

/* Load tests/fixtures/<file>. 0 and one CHECK failure when it cannot be found or parsed. */
int fx_load(fx_file *fx, const char *file) {
    char cand[3][512], srcdir[400];
    const char *env = getenv("ATTN_TEST_DIR");
    char *text = NULL, *p;
    size_t size = 0;
    int i, cap = 0, ok = 1;
    memset(fx, 0, sizeof *fx);
    fx_source_dir(srcdir, sizeof srcdir);
    cand[0][0] = 0;
    if (env && env[0] && strlen(env) < 400) sprintf(cand[0], "%s/fixtures/%s", env, file);
    sprintf(cand[1], "%sfixtures/%s", srcdir, file);
    sprintf(cand[2], "tests/fixtures/%s", file);
    for (i = 0; i < 3 && !text; i++) {
        if (!cand[i][0]) continue;
        text = fx_read_all(cand[i], &size);
        if (text) strcpy(fx->path, cand[i]);
    }
    if (!CHECK(text != NULL, "fixture %s not found (tried $ATTN_TEST_DIR/fixtures, %sfixtures, tests/fixtures; "
                             "regenerate with /usr/bin/python3 the generator in tools/ named at the top of the file)", file, srcdir))
        return 0;
    p = text;
    for (;;) {
        fx_rec *r;
        char *end;
        long n, k;
        size_t len;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        if (*p == '#') {
            while (*p && *p != '\n') p++;
            continue;
        }
        for (len = 0; p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != '\r' && p[len] != '\n'; len++) {}
        if (!CHECK(len < sizeof r->name, "%s: record name too long at byte %d", fx->path, (int)(p - text))) {
            ok = 0;
            break;
        }
        if (fx->n_recs == cap) {
            fx_rec *nr;
            cap = cap ? cap * 2 : 64;
            nr = (fx_rec *)realloc(fx->recs, (size_t)cap * sizeof *nr);
            if (!CHECK(nr != NULL, "out of memory")) {
                ok = 0;
                break;
            }
            fx->recs = nr;
        }
        r = &fx->recs[fx->n_recs];
        memcpy(r->name, p, len);
        r->name[len] = 0;
        p += len;
        n = strtol(p, &end, 10);
        if (!CHECK(end != p && n >= 0 && n < 10000000L, "%s: bad count for record %s", fx->path, r->name)) {
            ok = 0;
            break;
        }
        p = end;
        r->n = (int)n;
        r->v = (float *)malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!CHECK(r->v != NULL, "out of memory")) {
            ok = 0;
            break;
        }
        fx->n_recs++;
        for (k = 0; k < n; k++) {
            double d = strtod(p, &end);
            if (end == p) break;
            r->v[k] = (float)d;
            p = end;
        }
        if (!CHECK(k == n, "%s: record %s has %ld numbers, header says %ld", fx->path, r->name, k, n)) {
            ok = 0;
            break;
        }
    }
    free(text);
    return ok;
}

void fx_free(fx_file *fx) {
    int i;
    for (i = 0; i < fx->n_recs; i++) free(fx->recs[i].v);
    free(fx->recs);
    memset(fx, 0, sizeof *fx);
}

const fx_rec *fx_find(const fx_file *fx, const char *name) {
    int i;
    for (i = 0; i < fx->n_recs; i++)
        if (strcmp(fx->recs[i].name, name) == 0) return &fx->recs[i];
    return NULL;
}

/* Record "<cs>.<what>" or NULL. */
