/* gasm.c - the .gasm assembler: text source to a .gpuapp v1 image.
 *
 * One statement a line; `;` or `//` starts a comment; `name:` defines a
 * label (alone or before an instruction); directives .name .state
 * .vertices .threads .entry .flags .equ set header fields and constants.
 * Errors name FILE:LINE. Labels may be used before they are defined: jumps
 * are patched once the whole file is read. See docs/gpuapp.md. */
#include "gpuos/gpuos-impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t op;
    const char *name;
    const char *shape;
} gos_opinfo;

const void *elo__gpuapp_opinfo(size_t *count);

#define GASM_MAX_LABELS 65536
#define GASM_IDENT 64

typedef struct {
    char name[GASM_IDENT];
    uint32_t value;     /* instruction index (labels) */
    float fvalue;       /* constants */
    int is_const;
    uint32_t line;
} gasm_sym;

typedef struct {
    uint32_t insn;      /* instruction to patch */
    char name[GASM_IDENT];
    uint32_t line;
} gasm_fix;

typedef struct {
    const char *file;
    uint32_t line;
    uint8_t *code;      /* 8 bytes per instruction */
    uint32_t count, cap;
    gasm_sym *syms;
    uint32_t nsyms, csyms;
    gasm_fix *fixes;
    uint32_t nfix, cfix;
    char name[GOS_NAME_LEN];
    uint32_t state, vertices, threads, flags;
    char entry[GASM_IDENT];
    uint32_t entry_line;
    int have_name;
} gasm;

#define GASM_ERR(g, ...) gasm_error((g), __VA_ARGS__)

__attribute__((format(printf, 2, 3))) static int gasm_error(gasm *g, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return elo_seterr(ELO_BADINPUT, "%s:%u: %s", g->file, g->line, msg);
}

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\r')
        (*p)++;
}

static int is_ident_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == '.'; }
static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.'; }

static int read_ident(gasm *g, const char **p, char *out)
{
    size_t n = 0;
    if (!is_ident_start(**p))
        return GASM_ERR(g, "expected a name");
    while (is_ident(**p)) {
        if (n + 1 >= GASM_IDENT)
            return GASM_ERR(g, "name longer than %d characters", GASM_IDENT - 1);
        out[n++] = *(*p)++;
    }
    out[n] = 0;
    return ELO_OK;
}

static gasm_sym *find_sym(gasm *g, const char *name)
{
    for (uint32_t i = 0; i < g->nsyms; i++)
        if (!strcmp(g->syms[i].name, name))
            return &g->syms[i];
    return NULL;
}

static int add_sym(gasm *g, const char *name, uint32_t value, float fvalue, int is_const)
{
    gasm_sym *old = find_sym(g, name);
    if (old)
        return GASM_ERR(g, "'%s' is already defined on line %u", name, old->line);
    if (g->nsyms >= GASM_MAX_LABELS)
        return GASM_ERR(g, "too many labels");
    if (g->nsyms == g->csyms) {
        uint32_t c = g->csyms ? g->csyms * 2 : 64;
        gasm_sym *s = elo_realloc(g->syms, c * sizeof *s);
        if (!s)
            return elo_seterr(ELO_NOMEM, "assembler: out of memory");
        g->syms = s;
        g->csyms = c;
    }
    gasm_sym *s = &g->syms[g->nsyms++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->value = value;
    s->fvalue = fvalue;
    s->is_const = is_const;
    s->line = g->line;
    return ELO_OK;
}

/* A number: decimal/float, 0x hex, 'c' character, or an .equ constant. */
static int read_number(gasm *g, const char **p, float *out)
{
    skip_ws(p);
    const char *s = *p;
    if (*s == '\'') {
        if (!s[1] || s[2] != '\'' || (unsigned char)s[1] < 32 || (unsigned char)s[1] > 126)
            return GASM_ERR(g, "bad character literal");
        *out = (float)(unsigned char)s[1];
        *p = s + 3;
        return ELO_OK;
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        char name[GASM_IDENT];
        int rc = read_ident(g, p, name);
        if (rc < 0)
            return rc;
        gasm_sym *sym = find_sym(g, name);
        if (!sym || !sym->is_const)
            return GASM_ERR(g, "unknown constant '%s'", name);
        *out = sym->fvalue;
        return ELO_OK;
    }
    char *end;
    errno = 0;
    double v;
    if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ||
        ((s[0] == '-' || s[0] == '+') && s[1] == '0' && (s[2] == 'x' || s[2] == 'X'))) {
        long long iv = strtoll(s, &end, 16);
        v = (double)iv;
    } else {
        v = strtod(s, &end);
    }
    if (end == s)
        return GASM_ERR(g, "expected a number");
    if (errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38)
        return GASM_ERR(g, "number out of range");
    *out = (float)v;
    *p = end;
    return ELO_OK;
}

static int read_uint(gasm *g, const char **p, uint32_t max, uint32_t *out)
{
    float f;
    int rc = read_number(g, p, &f);
    if (rc < 0)
        return rc;
    if (f < 0.0f || f != floorf(f) || f > (float)max)
        return GASM_ERR(g, "expected a whole number in 0..%u", max);
    *out = (uint32_t)f;
    return ELO_OK;
}

static int read_reg(gasm *g, const char **p, uint8_t *out)
{
    skip_ws(p);
    const char *s = *p;
    if ((s[0] != 'r' && s[0] != 'R') || !isdigit((unsigned char)s[1]))
        return GASM_ERR(g, "expected a register r0..r%d", GOS_REGS - 1);
    int v = 0, n = 1;
    while (isdigit((unsigned char)s[n]) && v < 1000)
        v = v * 10 + (s[n++] - '0');
    if (v >= GOS_REGS || is_ident(s[n]))
        return GASM_ERR(g, "no register '%.*s' (r0..r%d)", n, s, GOS_REGS - 1);
    *out = (uint8_t)v;
    *p = s + n;
    return ELO_OK;
}

static int expect(gasm *g, const char **p, char c)
{
    skip_ws(p);
    if (**p != c)
        return GASM_ERR(g, "expected '%c'", c);
    (*p)++;
    return ELO_OK;
}

/* "[rN+imm]", "[rN-imm]", "[rN]" or "[imm]" */
static int read_mem(gasm *g, const char **p, uint8_t *base, float *off)
{
    int rc = expect(g, p, '[');
    if (rc < 0)
        return rc;
    skip_ws(p);
    *base = GOS_NOREG;
    *off = 0.0f;
    if ((**p == 'r' || **p == 'R') && isdigit((unsigned char)(*p)[1])) {
        if ((rc = read_reg(g, p, base)) < 0)
            return rc;
        skip_ws(p);
        if (**p == '+' || **p == '-') {
            int neg = **p == '-';
            (*p)++;
            if ((rc = read_number(g, p, off)) < 0)
                return rc;
            if (neg)
                *off = -*off;
        }
    } else if ((rc = read_number(g, p, off)) < 0) {
        return rc;
    }
    if (*off != floorf(*off))
        return GASM_ERR(g, "a state offset is a whole number of words");
    return expect(g, p, ']');
}

static int read_color(gasm *g, const char **p, uint32_t *out)
{
    skip_ws(p);
    if (**p != '#')
        return GASM_ERR(g, "expected a colour #RRGGBB or #RRGGBBAA");
    (*p)++;
    uint32_t v = 0;
    int n = 0;
    while (isxdigit((unsigned char)**p) && n < 9) {
        char c = *(*p)++;
        v = v * 16 + (uint32_t)(isdigit((unsigned char)c) ? c - '0' : tolower(c) - 'a' + 10);
        n++;
    }
    if (n == 6)
        v = v << 8 | 0xffu;
    else if (n != 8)
        return GASM_ERR(g, "a colour has 6 or 8 hex digits");
    *out = gos_rgba(v >> 24, v >> 16, v >> 8, v);
    return ELO_OK;
}

static int emit(gasm *g, uint8_t op, uint8_t d, uint8_t a, uint8_t b, uint32_t imm_bits)
{
    if (g->count >= GOS_MAX_CODE)
        return GASM_ERR(g, "more than %u instructions", GOS_MAX_CODE);
    if (g->count == g->cap) {
        uint32_t c = g->cap ? g->cap * 2 : 256;
        uint8_t *code = elo_realloc(g->code, (size_t)c * 8);
        if (!code)
            return elo_seterr(ELO_NOMEM, "assembler: out of memory");
        g->code = code;
        g->cap = c;
    }
    uint8_t *in = g->code + (size_t)g->count * 8;
    in[0] = op;
    in[1] = d;
    in[2] = a;
    in[3] = b;
    for (int i = 0; i < 4; i++)
        in[4 + i] = (uint8_t)(imm_bits >> (8 * i));
    g->count++;
    return ELO_OK;
}

static int add_fix(gasm *g, const char *label)
{
    if (g->nfix == g->cfix) {
        uint32_t c = g->cfix ? g->cfix * 2 : 64;
        gasm_fix *f = elo_realloc(g->fixes, c * sizeof *f);
        if (!f)
            return elo_seterr(ELO_NOMEM, "assembler: out of memory");
        g->fixes = f;
        g->cfix = c;
    }
    gasm_fix *f = &g->fixes[g->nfix++];
    f->insn = g->count;
    snprintf(f->name, sizeof f->name, "%s", label);
    f->line = g->line;
    return ELO_OK;
}

static int comma(gasm *g, const char **p) { return expect(g, p, ','); }

static int instruction(gasm *g, const char *mnem, const char **p)
{
    size_t nops;
    const gos_opinfo *ops = elo__gpuapp_opinfo(&nops);
    const gos_opinfo *oi = NULL;
    for (size_t i = 0; i < nops; i++)
        if (!strcasecmp(ops[i].name, mnem))
            oi = &ops[i];
    if (!oi)
        return GASM_ERR(g, "unknown instruction '%s'", mnem);
    uint8_t d = 0, a = 0, b = 0;
    float imm = 0.0f;
    uint32_t bits = 0;
    int rc = ELO_OK;
    const char *shape = oi->shape;
    int first = 1;
    for (; *shape && rc == ELO_OK; shape++) {
        if (!first && (rc = comma(g, p)) < 0)
            break;
        first = 0;
        switch (*shape) {
        case 'd': rc = read_reg(g, p, &d); break;
        case 'a': rc = read_reg(g, p, &a); break;
        case 'b': rc = read_reg(g, p, &b); break;
        case 'i': rc = read_number(g, p, &imm); break;
        case 'l': {
            char label[GASM_IDENT];
            skip_ws(p);
            if ((rc = read_ident(g, p, label)) == ELO_OK)
                rc = add_fix(g, label);
            break;
        }
        case 'm': rc = read_mem(g, p, &a, &imm); break;
        case 's':
            if ((rc = read_mem(g, p, &b, &imm)) == ELO_OK && (rc = comma(g, p)) == ELO_OK)
                rc = read_reg(g, p, &a);
            break;
        case 'c':
            if ((rc = read_color(g, p, &bits)) == ELO_OK)
                imm = gos_bits_f32(bits);
            break;
        case 'g':
            if ((rc = read_reg(g, p, &d)) == ELO_OK && (rc = comma(g, p)) == ELO_OK) {
                skip_ws(p);
                if ((**p == 'r' || **p == 'R') && isdigit((unsigned char)(*p)[1])) {
                    rc = read_reg(g, p, &a);
                } else {
                    a = GOS_NOREG;
                    rc = read_number(g, p, &imm);
                }
            }
            break;
        }
    }
    if (rc < 0)
        return rc;
    if ((oi->op == GOS_OP_QUAD || oi->op == GOS_OP_GLYPH) && d + 3 >= GOS_REGS)
        return GASM_ERR(g, "%s reads r%u..r%u: use r0..r%d", oi->name, d, d + 3, GOS_REGS - 4);
    if (oi->op == GOS_OP_RGB && a + 2 >= GOS_REGS)
        return GASM_ERR(g, "rgb reads r%u..r%u: use r0..r%d", a, a + 2, GOS_REGS - 3);
    skip_ws(p);
    if (**p)
        return GASM_ERR(g, "unexpected '%s' after the operands", *p);
    return emit(g, oi->op, d, a, b, gos_f32_bits(imm));
}

static int directive(gasm *g, const char *name, const char **p)
{
    int rc;
    skip_ws(p);
    if (!strcmp(name, ".name")) {
        if (**p != '"')
            return GASM_ERR(g, ".name wants a quoted string");
        const char *s = ++*p;
        const char *e = strchr(s, '"');
        if (!e)
            return GASM_ERR(g, "unterminated string");
        if (e - s < 1 || e - s >= (long)GOS_NAME_LEN)
            return GASM_ERR(g, "a name has 1..%u characters", GOS_NAME_LEN - 1);
        memset(g->name, 0, sizeof g->name);
        memcpy(g->name, s, (size_t)(e - s));
        g->have_name = 1;
        *p = e + 1;
    } else if (!strcmp(name, ".state")) {
        if ((rc = read_uint(g, p, GOS_MAX_STATE, &g->state)) < 0)
            return rc;
    } else if (!strcmp(name, ".vertices")) {
        if ((rc = read_uint(g, p, GOS_MAX_VERTICES, &g->vertices)) < 0)
            return rc;
    } else if (!strcmp(name, ".threads")) {
        if ((rc = read_uint(g, p, GOS_MAX_THREADS, &g->threads)) < 0)
            return rc;
        if (!g->threads)
            return GASM_ERR(g, ".threads is 1..%u", GOS_MAX_THREADS);
    } else if (!strcmp(name, ".flags")) {
        if ((rc = read_uint(g, p, 0xffffffu, &g->flags)) < 0)
            return rc;
    } else if (!strcmp(name, ".entry")) {
        if ((rc = read_ident(g, p, g->entry)) < 0)
            return rc;
        g->entry_line = g->line;
    } else if (!strcmp(name, ".equ")) {
        char cname[GASM_IDENT];
        float v;
        if ((rc = read_ident(g, p, cname)) < 0 || (rc = comma(g, p)) < 0 ||
            (rc = read_number(g, p, &v)) < 0)
            return rc;
        if ((rc = add_sym(g, cname, 0, v, 1)) < 0)
            return rc;
    } else {
        return GASM_ERR(g, "unknown directive '%s'", name);
    }
    skip_ws(p);
    if (**p)
        return GASM_ERR(g, "unexpected '%s' after %s", *p, name);
    return ELO_OK;
}

/* One source line, comments already cut. */
static int statement(gasm *g, char *line)
{
    const char *p = line;
    skip_ws(&p);
    while (*p) {
        char word[GASM_IDENT];
        int rc = read_ident(g, &p, word);
        if (rc < 0)
            return rc;
        if (*p == ':') {
            p++;
            if (word[0] == '.')
                return GASM_ERR(g, "a label cannot start with '.'");
            if ((rc = add_sym(g, word, g->count, 0.0f, 0)) < 0)
                return rc;
            skip_ws(&p);
            continue;
        }
        if (word[0] == '.')
            return directive(g, word, &p);
        return instruction(g, word, &p);
    }
    return ELO_OK;
}

static void gasm_free(gasm *g)
{
    elo_free(g->code);
    elo_free(g->syms);
    elo_free(g->fixes);
}

int elo_gasm_assemble(const char *src, size_t len, const char *filename, uint8_t **out,
                      size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    gasm g;
    memset(&g, 0, sizeof g);
    g.file = filename ? filename : "<input>";
    g.vertices = 1024;
    g.threads = 1;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = ELO_OK;
    size_t pos = 0;
    while (pos < len && rc == ELO_OK) {
        g.line++;
        size_t end = pos;
        while (end < len && src[end] != '\n')
            end++;
        size_t n = end - pos;
        if (n + 1 > line_cap) {
            line_cap = n + 1;
            char *nl = elo_realloc(line, line_cap);
            if (!nl) {
                rc = elo_seterr(ELO_NOMEM, "assembler: out of memory");
                break;
            }
            line = nl;
        }
        memcpy(line, src + pos, n);
        line[n] = 0;
        pos = end + 1;
        if (memchr(line, 0, n)) {
            rc = GASM_ERR(&g, "NUL byte in the source");
            break;
        }
        /* cut comments (outside string and character literals) */
        int in_str = 0;
        for (size_t i = 0; i < n; i++) {
            char c = line[i];
            if (c == '"')
                in_str = !in_str;
            else if (!in_str && c == '\'' && i + 2 < n && line[i + 2] == '\'')
                i += 2;
            else if (!in_str && (c == ';' || (c == '/' && line[i + 1] == '/'))) {
                line[i] = 0;
                break;
            }
        }
        size_t k = strlen(line);
        while (k && isspace((unsigned char)line[k - 1]))
            line[--k] = 0;
        rc = statement(&g, line);
    }
    elo_free(line);
    if (rc == ELO_OK && g.count == 0)
        rc = elo_seterr(ELO_BADINPUT, "%s: no instructions", g.file);
    for (uint32_t i = 0; rc == ELO_OK && i < g.nfix; i++) {
        gasm_sym *s = find_sym(&g, g.fixes[i].name);
        if (!s || s->is_const) {
            g.line = g.fixes[i].line;
            rc = GASM_ERR(&g, "unknown label '%s'", g.fixes[i].name);
            break;
        }
        uint32_t bits = gos_f32_bits((float)s->value);
        uint8_t *in = g.code + (size_t)g.fixes[i].insn * 8;
        for (int b = 0; b < 4; b++)
            in[4 + b] = (uint8_t)(bits >> (8 * b));
    }
    uint32_t entry = 0;
    if (rc == ELO_OK && g.entry[0]) {
        gasm_sym *s = find_sym(&g, g.entry);
        if (!s || s->is_const) {
            g.line = g.entry_line;
            rc = GASM_ERR(&g, "unknown entry label '%s'", g.entry);
        } else if (s->value >= g.count) {
            g.line = g.entry_line;
            rc = GASM_ERR(&g, "entry label '%s' is past the last instruction", g.entry);
        } else {
            entry = s->value;
        }
    }
    if (rc == ELO_OK && !g.have_name)
        rc = elo_seterr(ELO_BADINPUT, "%s: missing .name", g.file);
    if (rc < 0) {
        gasm_free(&g);
        return rc;
    }
    size_t total = GOS_HEADER_SIZE + (size_t)g.count * 8;
    uint8_t *img = elo_calloc(1, total);
    if (!img) {
        gasm_free(&g);
        return elo_seterr(ELO_NOMEM, "assembler: out of memory");
    }
    memcpy(img, GOS_MAGIC, 6);
    uint32_t fields[7] = {GOS_HEADER_SIZE, g.count, g.state, g.vertices, g.threads, entry, 0};
    img[6] = (uint8_t)GOS_VERSION;
    img[7] = 0;
    for (int b = 0; b < 4; b++)
        img[8 + b] = (uint8_t)(g.flags >> (8 * b));
    for (int f = 0; f < 6; f++)
        for (int b = 0; b < 4; b++)
            img[12 + 4 * f + b] = (uint8_t)(fields[f] >> (8 * b));
    memcpy(img + 36, g.name, GOS_NAME_LEN);
    memcpy(img + GOS_HEADER_SIZE, g.code, (size_t)g.count * 8);
    gasm_free(&g);
    *out = img;
    *out_len = total;
    return ELO_OK;
}
