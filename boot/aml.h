/* A small AML (ACPI Machine Language) writer: just what mica's DSDT needs. Objects are built
 * into a growable byte buffer; nesting (Scope, Device, Package, Buffer) is closed with aml_end(),
 * which patches in the package length. */
#ifndef MICA_AML_H
#define MICA_AML_H

#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml {
	uint8_t *buf;
	size_t len, cap;
	size_t open[AML_MAX_DEPTH]; /* where each open package's contents start */
	/* Whether each is a resource template: a Buffer whose contents begin with BufferSize and
	 * end with an end tag. */
	uint8_t open_kind[AML_MAX_DEPTH];
	int depth;
	int error;                  /* -ENOMEM once anything failed */
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);

void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t b);
/* NameString: "\\_SB_", "COM1", "_HID", "PCI0" (segments shorter than 4 are padded with '_'). */
void aml_name(struct aml *a, const char *name);
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* EISA ID ("PNP0A08") as the compressed 32-bit form. */
void aml_eisaid(struct aml *a, const char *id);

/* Name(NAME, <the object that follows>) */
void aml_name_decl(struct aml *a, const char *name);
/* Openers, closed by aml_end(). */
void aml_scope(struct aml *a, const char *name);
void aml_device(struct aml *a, const char *name);
void aml_package(struct aml *a, uint8_t nelems);
/* A resource template: a Buffer whose contents are resource descriptors; aml_end() adds the
 * end tag. */
void aml_resources(struct aml *a);
void aml_end(struct aml *a);

/* Resource descriptors (inside aml_resources). */
void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len);
void aml_res_interrupt(struct aml *a, uint32_t gsi, int edge, int active_low);
void aml_res_io(struct aml *a, uint16_t base, uint8_t len);
void aml_res_irq_noflags(struct aml *a, unsigned irq);
void aml_res_bus_numbers(struct aml *a, uint16_t first, uint16_t last);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max);
void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max);

#endif
