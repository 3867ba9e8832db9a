/* A minimal read-only flattened-device-tree walker. Nodes are identified by the offset of
 * their FDT_BEGIN_NODE token within the structure block. */
#include "guest.h"

#define FDT_MAGIC      0xd00dfeed
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE   2
#define FDT_PROP       3
#define FDT_NOP        4
#define FDT_END        9

static const uint8_t *st;   /* structure block */
static uint32_t st_size;
static const char *strs;    /* strings block */
static uint32_t strs_size;

bool fdt_init(const void *blob)
{
    const uint8_t *h = blob;
    if (!blob || be32(h) != FDT_MAGIC)
        return false;
    uint32_t total = be32(h + 4), off_st = be32(h + 8), off_strs = be32(h + 12);
    uint32_t version = be32(h + 20);
    if (version < 17 || total > 0x100000 || off_st >= total || off_strs >= total)
        return false;
    st = h + off_st;
    st_size = be32(h + 36);
    strs = (const char *)h + off_strs;
    strs_size = be32(h + 32);
    if (off_st + st_size > total || off_strs + strs_size > total)
        return false;
    return be32(st) == FDT_BEGIN_NODE;
}

static uint32_t tok(int off) { return (uint32_t)off + 4 <= st_size ? be32(st + off) : FDT_END; }

/* Offset just past the token at off (a node's name, a property's value). */
static int skip_token(int off)
{
    uint32_t t = tok(off);
    off += 4;
    if (t == FDT_BEGIN_NODE) {
        while ((uint32_t)off < st_size && st[off])
            off++;
        off = (int)ALIGN_UP((uint32_t)off + 1, 4u);
    } else if (t == FDT_PROP) {
        uint32_t len = be32(st + off);
        off = (int)ALIGN_UP((uint32_t)off + 8 + len, 4u);
    }
    return off;
}

const char *fdt_name(int node) { return (const char *)st + node + 4; }

int fdt_next_node(int node, int *depth)
{
    int off = skip_token(node);
    for (;;) {
        uint32_t t = tok(off);
        switch (t) {
        case FDT_BEGIN_NODE:
            if (depth)
                (*depth)++;
            return off;
        case FDT_END_NODE:
            if (depth && --(*depth) < 0)
                return -1;
            off += 4;
            break;
        case FDT_PROP:
        case FDT_NOP:
            off = skip_token(off);
            break;
        default:
            return -1;
        }
    }
}

int fdt_first_child(int node)
{
    int depth = 0;
    int n = fdt_next_node(node, &depth);
    return n >= 0 && depth == 1 ? n : -1;
}

int fdt_next_sibling(int node)
{
    int depth = 1;
    int n = node;
    do {
        n = fdt_next_node(n, &depth);
    } while (n >= 0 && depth > 1);
    return n >= 0 && depth == 1 ? n : -1;
}

int fdt_parent(int node)
{
    int stack[32];
    int depth = 0;
    stack[0] = 0;
    for (int n = 0; n >= 0;) {
        if (n == node)
            return depth > 0 ? stack[depth - 1] : -1;
        n = fdt_next_node(n, &depth);
        if (depth < 0 || depth >= (int)ARRAY_SIZE(stack))
            return -1;
        if (n >= 0)
            stack[depth] = n;
    }
    return -1;
}

int fdt_path(const char *path)
{
    if (!st || *path != '/')
        return -1;
    int node = 0;
    while (*path) {
        while (*path == '/')
            path++;
        if (!*path)
            break;
        size_t len = 0;
        while (path[len] && path[len] != '/')
            len++;
        int c;
        for (c = fdt_first_child(node); c >= 0; c = fdt_next_sibling(c)) {
            const char *nm = fdt_name(c);
            /* "memory" matches "memory@0" too, as in libfdt */
            if (!strncmp(nm, path, len) && (nm[len] == '\0' || nm[len] == '@'))
                break;
        }
        if (c < 0)
            return -1;
        node = c;
        path += len;
    }
    return node;
}

const void *fdt_prop(int node, const char *name, int *len)
{
    if (!st || node < 0)
        return NULL;
    int off = skip_token(node);
    for (;;) {
        uint32_t t = tok(off);
        if (t == FDT_NOP) {
            off += 4;
            continue;
        }
        if (t != FDT_PROP)
            return NULL;
        uint32_t plen = be32(st + off + 4), nameoff = be32(st + off + 8);
        if (nameoff < strs_size && !strcmp(strs + nameoff, name)) {
            if (len)
                *len = (int)plen;
            return st + off + 12;
        }
        off = skip_token(off);
    }
}

bool fdt_prop_u32(int node, const char *name, uint32_t *out)
{
    int len;
    const void *p = fdt_prop(node, name, &len);
    if (!p || len < 4)
        return false;
    *out = be32(p);
    return true;
}

const char *fdt_prop_str(int node, const char *name)
{
    int len;
    const char *p = fdt_prop(node, name, &len);
    return p && len > 0 && p[len - 1] == '\0' ? p : NULL;
}

bool fdt_is_compatible(int node, const char *compat)
{
    int len;
    const char *p = fdt_prop(node, "compatible", &len);
    size_t clen = strlen(compat);
    for (int i = 0; p && i < len;) {
        size_t l = strlen(p + i);
        if (l == clen && !memcmp(p + i, compat, clen))
            return true;
        i += (int)l + 1;
    }
    return false;
}

int fdt_find_compatible(int after, const char *compat)
{
    if (!st)
        return -1;
    int n = after < 0 ? 0 : fdt_next_node(after, NULL);
    for (; n >= 0; n = fdt_next_node(n, NULL))
        if (fdt_is_compatible(n, compat))
            return n;
    return -1;
}

static uint64_t read_cells(const uint8_t *p, uint32_t cells)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < cells; i++)
        v = v << 32 | be32(p + 4 * i);
    return v;
}

bool fdt_reg(int node, int idx, uint64_t *addr, uint64_t *size)
{
    int parent = fdt_parent(node);
    uint32_t ac = 2, sc = 1; /* devicetree defaults */
    if (parent >= 0) {
        fdt_prop_u32(parent, "#address-cells", &ac);
        fdt_prop_u32(parent, "#size-cells", &sc);
    }
    if (ac > 2 || sc > 2 || ac == 0)
        return false;
    int len;
    const uint8_t *p = fdt_prop(node, "reg", &len);
    uint32_t stride = 4 * (ac + sc);
    if (!p || idx < 0 || (uint32_t)(idx + 1) * stride > (uint32_t)len)
        return false;
    p += (uint32_t)idx * stride;
    *addr = read_cells(p, ac);
    if (size)
        *size = read_cells(p + 4 * ac, sc);
    return true;
}
