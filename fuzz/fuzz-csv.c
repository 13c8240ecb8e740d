/* fuzz-csv.c - libFuzzer harness for the streaming CSV reader: every
 * record it returns must have consistent field pointers and lengths. */
#include "elohim/core.h"
#include "elohim/sql.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    elo_csv *c = elo_csv_new_mem((const char *)data, size);
    if (!c)
        return 0;
    char **f;
    size_t *l;
    int n;
    size_t total = 0;
    while ((n = elo_csv_next(c, &f, &l)) > 0) {
        for (int i = 0; i < n; i++) {
            if (strlen(f[i]) != l[i])
                abort();
            total += l[i];
        }
        if (total > size)
            abort();
    }
    elo_csv_free(c);
    return 0;
}
