/* expect.h: the checks the C test programs share (tests/c/misuse.c, tests/c/glow.c). Each check prints one
 * line, "ok" or "FAIL", and counts failures; a program ends with `printf("%d failure(s)\n", failures)`. */
#ifndef GFORGE_TEST_EXPECT_H
#define GFORGE_TEST_EXPECT_H

#include "gforge.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

/* `want` with a message containing `needle` (any non-empty message when NULL). */
static void expect(const char* what, gf_status got, gf_status want, const char* needle) {
    const char* msg = got == GF_OK ? "" : gf_last_error();
    int ok = got == want && (want == GF_OK || (msg[0] && (!needle || strstr(msg, needle))));
    printf("%s %s -> %s %s\n", ok ? "ok  " : "FAIL", what, gf_status_name(got), msg);
    if (!ok) {
        printf("     wanted %s with \"%s\"\n", gf_status_name(want), needle ? needle : "");
        failures++;
    }
}
#define EXPECT(call, want, needle) expect(#call, (call), (want), (needle))

static void check(const char* what, int ok) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

#endif
