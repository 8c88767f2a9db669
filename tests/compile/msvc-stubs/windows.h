/* tests/compile/msvc-stubs/windows.h - the Windows API attn.h's thread pool calls on _WIN32, nothing more, for tools/check-all.sh's msvc-target syntax check. */
#pragma once
#include <stddef.h>
typedef unsigned long DWORD;
typedef long LONG;
typedef int BOOL;
typedef void *HANDLE;
typedef void *LPVOID;
typedef struct { void *Ptr; } SRWLOCK;
typedef struct { void *Ptr; } CONDITION_VARIABLE;
typedef struct { DWORD dwNumberOfProcessors; } SYSTEM_INFO;
#define WINAPI __stdcall
#define INFINITE 0xFFFFFFFFul
#define STACK_SIZE_PARAM_IS_A_RESERVATION 0x00010000ul
typedef DWORD(WINAPI *LPTHREAD_START_ROUTINE)(LPVOID);
void InitializeSRWLock(SRWLOCK *);
void AcquireSRWLockExclusive(SRWLOCK *);
void ReleaseSRWLockExclusive(SRWLOCK *);
void InitializeConditionVariable(CONDITION_VARIABLE *);
BOOL SleepConditionVariableSRW(CONDITION_VARIABLE *, SRWLOCK *, DWORD, unsigned long);
void WakeConditionVariable(CONDITION_VARIABLE *);
void WakeAllConditionVariable(CONDITION_VARIABLE *);
HANDLE CreateThread(void *, size_t, LPTHREAD_START_ROUTINE, LPVOID, DWORD, DWORD *);
DWORD WaitForSingleObject(HANDLE, DWORD);
BOOL CloseHandle(HANDLE);
void GetSystemInfo(SYSTEM_INFO *);
LONG InterlockedCompareExchange(LONG volatile *, LONG, LONG);
LONG InterlockedExchange(LONG volatile *, LONG);
LONG InterlockedExchangeAdd(LONG volatile *, LONG);
#define YieldProcessor() ((void)0)
