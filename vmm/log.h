/* Diagnostics on stderr, prefixed "mica: ". Errors are reported once, at the edge that knows
 * the context; lower layers return negative errno instead of printing. */
#ifndef MICA_LOG_H
#define MICA_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

#include <stdbool.h>

void log_set_level(enum log_level level);
void log_set_raw_terminal(bool raw);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
