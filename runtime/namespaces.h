#pragma once
// Namespaces: which ones a sandbox gets, and the child-side steps that configure a fresh uts and net namespace
// or join a sandbox's namespaces for an exec. Child-side functions return 0 or an errno and allocate nothing.
#include <sched.h>

#include <string>

namespace sbx::rt {

// Created by clone3 for every sandbox. The cgroup namespace is unshared separately, after the child has been
// placed in its cgroup, so that its root is the sandbox's cgroup on v1 hosts too.
constexpr unsigned long kSandboxCloneFlags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
constexpr int kSandboxNamespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
                                   CLONE_NEWCGROUP;

int set_hostname(const std::string& name) noexcept;
// Brings `lo` up in the caller's (new) network namespace.
int bring_up_loopback() noexcept;
// Joins every namespace of the process behind `pidfd` in one setns(2) call, its user namespace too when
// `with_userns` (the kernel enters that one first, so the others are entered with its capabilities).
int join_namespaces(int pidfd, bool with_userns) noexcept;

}  // namespace sbx::rt
