/* `mica check`'s report: one line per thing mica needs from this host, "ok", "warn" or "no", and
 * for every problem what follows from it and what to do; then a verdict. The same as JSON for
 * --json. See cmd/check_internal.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd/check_internal.h"
#include "vmm/json.h"
#include "vmm/kvm.h"

static const char *const status_word[] = { "ok", "warn", "no" };

void report_init(struct report *r)
{
	memset(r, 0, sizeof(*r));
	r->api_version = -1;
	r->user_exit_us = r->kernel_exit_us = -1;
	memset(r->req, -1, sizeof(r->req));
	memset(r->opt, -1, sizeof(r->opt));
}

/* The few host bytes in the report (a hypervisor's signature, strerror text) are printed on a
 * terminal: anything outside printable ASCII becomes '?' (the JSON escapes them anyway). */
void ascii_safe(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}

struct item *add(struct report *r, const char *key, enum status st, const char *fmt, ...)
{
	struct item *it = &r->items[r->n < MAX_ITEMS ? r->n++ : MAX_ITEMS - 1];
	va_list ap;

	it->key = key;
	it->st = st;
	it->action[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(it->what, sizeof(it->what), fmt, ap);
	va_end(ap);
	ascii_safe(it->what);
	return it;
}

void act(struct item *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(it->action, sizeof(it->action), fmt, ap);
	va_end(ap);
	ascii_safe(it->action);
}

bool blocked(const struct report *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->items[i].st == ST_NO)
			return true;
	return false;
}

static const char *first_blocker(const struct report *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->items[i].st == ST_NO)
			return r->items[i].what;
	return NULL;
}

static void verdict(const struct report *r, char *buf, size_t len)
{
	const char *b = first_blocker(r);

	if (b)
		snprintf(buf, len, "mica cannot run VMs here: %s", b);
	else if (!strcmp(r->kind, "pvm"))
		snprintf(buf, len, "mica can run VMs here (PVM: only PVM-aware Linux kernels boot; for "
			 "others use scripts/with-kvm)");
	else if (r->user_exit_us >= 0)
		snprintf(buf, len, "mica can run VMs here (%s KVM: a VM exit to mica costs %.1f us%s)",
			 r->kind, r->user_exit_us, !strcmp(r->kind, "nested") ?
			 ", tens of times what it costs on bare metal" : "");
	else
		snprintf(buf, len, "mica can run VMs here (%s KVM)", r->kind);
}

void print_text(FILE *f, const struct report *r)
{
	char v[512];

	for (int i = 0; i < r->n; i++) {
		const struct item *it = &r->items[i];

		fprintf(f, "%-4s %s%s%s\n", status_word[it->st], it->what, it->action[0] ? ": " : "",
			it->action);
	}
	verdict(r, v, sizeof(v));
	fprintf(f, "%s\n", v);
}

void print_json(FILE *f, const struct report *r)
{
	char v[512];

	verdict(r, v, sizeof(v));
	fprintf(f, "{\n  \"version\": 1,\n  \"can_run\": %s,\n  \"verdict\": ",
		blocked(r) ? "false" : "true");
	json_cstring(f, v);
	fputs(",\n  \"blocker\": ", f);
	json_cstring(f, first_blocker(r));
	fprintf(f, ",\n  \"kvm\": {\n    \"device\": %s,\n    \"read_write\": %s,\n"
		"    \"api_version\": ", r->kvm_device ? "true" : "false",
		r->kvm_rw ? "true" : "false");
	if (r->api_version >= 0)
		fprintf(f, "%d", r->api_version);
	else
		fputs("null", f);
	fprintf(f, ",\n    \"usable\": %s,\n    \"kind\": ", r->vm_ok ? "true" : "false");
	json_cstring(f, r->kind);
	fputs(",\n    \"module\": ", f);
	json_cstring(f, r->module);
	fprintf(f, ",\n    \"host_is_vm\": %s,\n    \"hypervisor\": ", r->host_is_vm ? "true" : "false");
	json_cstring(f, r->host_is_vm ? r->hypervisor : NULL);
	fputs(",\n    \"cpu_virtualisation\": ", f);
	json_cstring(f, r->cpu_virt);
	fputs(",\n    \"max_vcpus\": ", f);
	if (r->max_vcpus > 0)
		fprintf(f, "%d", r->max_vcpus);
	else
		fputs("null", f);
	fputs(",\n    \"exit_us\": ", f);
	if (r->user_exit_us >= 0)
		fprintf(f, "{ \"userspace\": %.2f, \"kernel\": %.2f }", r->user_exit_us,
			r->kernel_exit_us);
	else
		fputs("null", f);
	fputs(",\n    \"caps\": {", f);
	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++)
		fprintf(f, "%s\n      \"%s\": %s", i ? "," : "", kvm_required_caps[i].name,
			r->req[i] < 0 ? "null" : r->req[i] ? "true" : "false");
	for (size_t i = 0; i < NOPT; i++)
		fprintf(f, ",\n      \"%s\": %s", optional_caps[i].name,
			r->opt[i] < 0 ? "null" : r->opt[i] ? "true" : "false");
	fputs("\n    }\n  },\n  \"blk_backend\": ", f);
	json_cstring(f, r->blk_backend);
	fprintf(f, ",\n  \"landlock_abi\": %u,\n  \"seccomp\": %s,\n  \"thp\": ", r->landlock_abi,
		r->seccomp ? "true" : "false");
	json_cstring(f, r->thp[0] ? r->thp : NULL);
	fputs(",\n  \"items\": [", f);
	for (int i = 0; i < r->n; i++) {
		const struct item *it = &r->items[i];

		fprintf(f, "%s\n    { \"key\": \"%s\", \"status\": \"%s\", \"what\": ", i ? "," : "",
			it->key, status_word[it->st]);
		json_cstring(f, it->what);
		fputs(", \"action\": ", f);
		json_cstring(f, it->action);
		fputs(" }", f);
	}
	fputs("\n  ]\n}\n", f);
}
