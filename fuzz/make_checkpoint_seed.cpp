// Writes a small, valid checkpoint (3 weights, 2 records) with the library's own writer, as a
// seed for fuzz_checkpoint: the apps' checkpoints hold 7,850 weights (450 KB), too large to fuzz
// quickly. Usage: make_checkpoint_seed PATH [float]
#include <cstdio>
#include <cstring>
#include <exception>

#include "ift/checkpoint.hpp"

template <class S>
void write(const char* path) {
  ift::Checkpoint<S> c;
  c.fingerprint = "seed fingerprint: method cg, steps 2";
  c.step = 2;
  c.finish_message = "";
  c.w = ift::Vector<S>::LinSpaced(3, S(-1), S(1));
  c.lambda = ift::Vector<S>::Constant(3, S(-6.9));
  c.inner.first = c.w;
  c.inner.second = c.w.cwiseAbs();
  c.inner.steps = 4;
  c.outer.first = c.lambda;
  c.outer.second = c.lambda.cwiseAbs();
  c.outer.steps = 2;
  c.rng_state = "5489 1 2 3";
  for (ift::Index k = 1; k <= 2; ++k) {
    ift::HyperStepRecord r;
    r.step = k;
    r.metrics.train_loss = 0.5, r.metrics.val_loss = 0.6, r.metrics.has_accuracy = true;
    r.hypergradient_norm = 1e-3;
    r.status = "converged";
    r.iterations = 2, r.hvps = 3;
    r.message = "ok";
    r.relative_residual = 1e-9;
    c.records.push_back(r);
  }
  c.solver_v = c.w;
  c.solver_alpha = 0.5;
  c.solver_lambda_max = 2;
  c.solver_uses = 1;
  ift::save_checkpoint(path, c);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_checkpoint_seed PATH [float]\n");
    return 2;
  }
  try {
    if (argc > 2 && std::strcmp(argv[2], "float") == 0)
      write<float>(argv[1]);
    else
      write<double>(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_checkpoint_seed: %s\n", e.what());
    return 1;
  }
  return 0;
}
