/* What a unit test of a virtio device model gives it in place of a VM: guest RAM (with a guard
 * page after it), an event loop the test runs by hand, and the fake transport. The tests name
 * it `vm` (vm.mem, vm.loop) as the models' environment. Header-only. */
#ifndef MICA_TEST_ENV_H
#define MICA_TEST_ENV_H

#include <stdlib.h>

#include "devices/virtio/virtio.h"
#include "tests/unit/fake_transport.h"
#include "tests/unit/vring_driver.h"
#include "vmm/evloop.h"
#include "vmm/memory.h"

#define TEST_MAX_DEVS 8

struct test_vm {
	struct guest_mem mem;
	struct evloop loop;
	struct virtio_env env;           /* what constructors get: &vm.mem, &vm.loop */
	struct virtio_dev *devs[TEST_MAX_DEVS];
	int ndevs;
};

static struct test_vm vm;

static inline void test_vm_init(uint64_t ram)
{
	memset(&vm, 0, sizeof(vm));
	if (test_guest_mem_init(&vm.mem, ram) < 0 || evloop_init(&vm.loop) < 0)
		abort();
	vm.env = (struct virtio_env){ .mem = &vm.mem, .loop = &vm.loop };
}

/* Puts a created device on the fake transport; test_vm_destroy() frees it. */
static inline struct virtio_dev *test_vm_plug(struct virtio_dev *dev)
{
	if (vm.ndevs == TEST_MAX_DEVS)
		abort();
	dev->transport = &fake_transport;
	dev->transport_priv = NULL;
	vm.devs[vm.ndevs++] = dev;
	return dev;
}

static inline void test_vm_destroy(void)
{
	while (vm.ndevs)
		virtio_dev_free(vm.devs[--vm.ndevs]);
	evloop_destroy(&vm.loop);
	guest_mem_destroy(&vm.mem);
}

#endif
