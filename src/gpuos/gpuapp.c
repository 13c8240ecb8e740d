/* gpuapp.c - the .gpuapp v1 format on the host: validation with messages
 * (the device runs the same gos_header_check), rejection reasons and a
 * one-instruction disassembler for `elohim app inspect`. */
#include "gpuos/gpuos-impl.h"

#include <stdio.h>
#include <string.h>

const char *elo_gpuapp_reason(int reason)
{
    switch (reason) {
#define GOS__X(name, value, msg) case value: return msg;
        GOS_REASON_MAP(GOS__X)
#undef GOS__X
    }
    return "unknown reason";
}

int elo_gpuapp_parse(const uint8_t *data, size_t size, elo_gpuapp_info *info)
{
    gos_header h;
    memset(&h, 0, sizeof h);
    memset(info, 0, sizeof *info);
    int r = gos_header_check(data, size, &h);
    static const struct { int reason; unsigned offset; const char *field; } where[] = {
        {GOS_REASON_TRUNCATED, 0, "header"},       {GOS_REASON_MAGIC, 0, "magic"},
        {GOS_REASON_VERSION, 6, "version"},        {GOS_REASON_CODE_RANGE, 12, "code_offset"},
        {GOS_REASON_CODE_EMPTY, 16, "code_size"},  {GOS_REASON_STATE_SIZE, 20, "state_size"},
        {GOS_REASON_VERTEX_BUDGET, 24, "vertex_budget"},
        {GOS_REASON_THREADS, 28, "thread_count"},  {GOS_REASON_ENTRY, 32, "entry_point"},
        {GOS_REASON_NAME, 36, "name"},             {GOS_REASON_TOO_BIG, 0, "file size"},
    };
    if (r != GOS_REASON_OK) {
        for (size_t i = 0; i < ELO_ARRAY_LEN(where); i++)
            if (where[i].reason == r)
                return elo_seterr(ELO_CORRUPT, "%s (field %s at byte %u; file has %zu bytes)",
                                  elo_gpuapp_reason(r), where[i].field, where[i].offset, size);
        return elo_seterr(ELO_CORRUPT, "%s", elo_gpuapp_reason(r));
    }
    info->version = h.version;
    info->flags = h.flags;
    info->code_offset = h.code_offset;
    info->code_size = h.code_size;
    info->state_size = h.state_size;
    info->vertex_budget = h.vertex_budget;
    info->thread_count = h.thread_count;
    info->entry_point = h.entry_point;
    memcpy(info->name, h.name, sizeof info->name);
    return ELO_OK;
}

/* Mnemonic and operand shape of each opcode; shared with the assembler. */
typedef struct {
    uint8_t op;
    const char *name;
    const char *shape; /* d: dst reg, a: src1 reg, b: src2 reg, i: imm, l: label,
                          m: [base+imm] load, s: store, c: colour, g: glyph */
} gos_opinfo;

static const gos_opinfo opinfo[] = {
    {GOS_OP_HALT, "halt", ""},        {GOS_OP_MOVI, "movi", "di"},
    {GOS_OP_MOV, "mov", "da"},        {GOS_OP_ADD, "add", "dab"},
    {GOS_OP_SUB, "sub", "dab"},       {GOS_OP_MUL, "mul", "dab"},
    {GOS_OP_DIV, "div", "dab"},       {GOS_OP_ADDI, "addi", "dai"},
    {GOS_OP_MULI, "muli", "dai"},     {GOS_OP_MIN, "min", "dab"},
    {GOS_OP_MAX, "max", "dab"},       {GOS_OP_FLOOR, "floor", "da"},
    {GOS_OP_ABS, "abs", "da"},        {GOS_OP_MOD, "mod", "dab"},
    {GOS_OP_SIN, "sin", "da"},        {GOS_OP_COS, "cos", "da"},
    {GOS_OP_SQRT, "sqrt", "da"},      {GOS_OP_LT, "lt", "dab"},
    {GOS_OP_LE, "le", "dab"},         {GOS_OP_EQ, "eq", "dab"},
    {GOS_OP_NE, "ne", "dab"},         {GOS_OP_JMP, "jmp", "l"},
    {GOS_OP_JZ, "jz", "al"},          {GOS_OP_JNZ, "jnz", "al"},
    {GOS_OP_LD, "ld", "dm"},          {GOS_OP_ST, "st", "s"},
    {GOS_OP_FRAME, "frame", "d"},     {GOS_OP_TIME, "time", "d"},
    {GOS_OP_INPUT, "input", "di"},    {GOS_OP_LANE, "lane", "d"},
    {GOS_OP_LANES, "lanes", "d"},     {GOS_OP_WINW, "winw", "d"},
    {GOS_OP_WINH, "winh", "d"},       {GOS_OP_HASH, "hash", "da"},
    {GOS_OP_COLOR, "color", "c"},     {GOS_OP_RGB, "rgb", "a"},
    {GOS_OP_QUAD, "quad", "d"},       {GOS_OP_GLYPH, "glyph", "g"},
};

const void *elo__gpuapp_opinfo(size_t *count);
const void *elo__gpuapp_opinfo(size_t *count)
{
    *count = ELO_ARRAY_LEN(opinfo);
    return opinfo;
}

void elo_gpuapp_disasm(const uint8_t in[8], char *buf, size_t cap)
{
    uint32_t op = in[0], d = in[1], a = in[2], b = in[3];
    uint32_t bits = gos_rd32(in + 4);
    float imm = gos_bits_f32(bits);
    const gos_opinfo *oi = NULL;
    for (size_t i = 0; i < ELO_ARRAY_LEN(opinfo); i++)
        if (opinfo[i].op == op)
            oi = &opinfo[i];
    if (!oi) {
        snprintf(buf, cap, ".byte %u, %u, %u, %u  ; unknown opcode", op, d, a, b);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "%s", oi->name);
    for (const char *s = oi->shape; *s && n < cap; s++) {
        const char *sep = s == oi->shape ? " " : ", ";
        int k = 0;
        switch (*s) {
        case 'd': k = snprintf(buf + n, cap - n, "%sr%u", sep, d); break;
        case 'a': k = snprintf(buf + n, cap - n, "%sr%u", sep, a); break;
        case 'b': k = snprintf(buf + n, cap - n, "%sr%u", sep, b); break;
        case 'i': k = snprintf(buf + n, cap - n, "%s%.9g", sep, (double)imm); break;
        case 'l': k = snprintf(buf + n, cap - n, "%s@%.0f", sep, (double)imm); break;
        case 'm':
            if (a == GOS_NOREG) k = snprintf(buf + n, cap - n, "%s[%.9g]", sep, (double)imm);
            else k = snprintf(buf + n, cap - n, "%s[r%u%+.9g]", sep, a, (double)imm);
            break;
        case 's':
            if (b == GOS_NOREG) k = snprintf(buf + n, cap - n, "%s[%.9g], r%u", sep, (double)imm, a);
            else k = snprintf(buf + n, cap - n, "%s[r%u%+.9g], r%u", sep, b, (double)imm, a);
            break;
        case 'c':
            k = snprintf(buf + n, cap - n, "%s#%02x%02x%02x%02x", sep, bits & 255u,
                         (bits >> 8) & 255u, (bits >> 16) & 255u, bits >> 24);
            break;
        case 'g':
            if (a == GOS_NOREG) k = snprintf(buf + n, cap - n, "%sr%u, %.0f", sep, d, (double)imm);
            else k = snprintf(buf + n, cap - n, "%sr%u, r%u", sep, d, a);
            break;
        }
        if (k < 0)
            break;
        n += (size_t)k;
    }
}
