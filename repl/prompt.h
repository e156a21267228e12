// prompt.h — the interactive loop (readline, history, Ctrl-C at the prompt).
#pragma once
#include "session.h"

// Read and run lines until `quit` or Ctrl-D; returns 1 when the last command failed, else 0.
int prompt_loop(Session *s);
