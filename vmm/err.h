/* One way to report a failure a person must read.
 *
 * Everywhere in mica, a function that can fail returns 0 or a negative errno. When the failure
 * needs explaining (a user's file or option, a limit of this host), the function also fills the
 * struct err its caller passed with one line saying what is wrong and, where it can, what to do;
 * err_set() does both in one statement:
 *
 *     return err_set(e, -ENOENT, "image %s does not exist", path);
 *
 * The line is printed once, at the edge that knows the context (cmd/main.c), which also turns it
 * into the exit status. Lower layers never print their own errors. Guest protocol violations are
 * not errors of this kind: they are the device's business (DEVICE_NEEDS_RESET, a rate-limited
 * warning), and virtq reports them as a constant reason string. */
#ifndef MICA_ERR_H
#define MICA_ERR_H

#define ERR_MSG_MAX 512

struct err {
	char msg[ERR_MSG_MAX];   /* "" until a failure fills it */
};

/* Formats the message into e (if e is not NULL) and returns -|errnum|. */
int err_set(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Puts a formatted prefix and ": " before the message e holds; returns -|errnum|. */
int err_prefix(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
