// stepverify/core.h: the core library (the stepverify::stepverify target) in
// one include: checkpoints, tokenizers, the backbone and its KV cache,
// verifiers and scoring sessions, answers, search and generation. Training,
// labeling and evaluation are in stepverify/train/ and stepverify/eval/
// (stepverify/stepverify.h includes everything). The backbone's torch module
// (stepverify/transformer.h, which includes all of <torch/torch.h>) is left
// out: scoring and search need only ATen's Tensor, so this include compiles
// in about an eighth of the umbrella's time.
//
//   #include <stepverify/core.h>
//   auto v = stepverify::Verifier::load("Qwen2.5-Math-PRM-7B");
//   auto r = v->score("What is 7 * 8?", {"7 * 8 = 56.", "The answer is 56."});
#pragma once

#include "stepverify/aggregate.h"
#include "stepverify/answer.h"
#include "stepverify/checkpoint.h"
#include "stepverify/config.h"
#include "stepverify/errors.h"
#include "stepverify/generation.h"
#include "stepverify/kv_cache.h"
#include "stepverify/limits.h"
#include "stepverify/model.h"
#include "stepverify/runtime.h"
#include "stepverify/sampler.h"
#include "stepverify/sampling.h"
#include "stepverify/search.h"
#include "stepverify/session.h"
#include "stepverify/steps.h"
#include "stepverify/tokenizer.h"
#include "stepverify/verifier.h"
#include "stepverify/generative.h"
#include "stepverify/input_template.h"
#include "stepverify/verifier_spec.h"
#include "stepverify/version.h"
