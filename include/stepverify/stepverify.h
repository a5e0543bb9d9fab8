// stepverify/stepverify.h: the umbrella header.
//
//   #include <stepverify/stepverify.h>
//   auto model = stepverify::Model::load("path/to/checkpoint");
#pragma once

#include "stepverify/answer.h"
#include "stepverify/arithmetic.h"
#include "stepverify/bon.h"
#include "stepverify/checkpoint.h"
#include "stepverify/config.h"
#include "stepverify/datasets.h"
#include "stepverify/demo.h"
#include "stepverify/errors.h"
#include "stepverify/evaluation.h"
#include "stepverify/generation.h"
#include "stepverify/kv_cache.h"
#include "stepverify/labeling.h"
#include "stepverify/model.h"
#include "stepverify/runtime.h"
#include "stepverify/search.h"
#include "stepverify/session.h"
#include "stepverify/tokenizer.h"
#include "stepverify/tokenizer_trainer.h"
#include "stepverify/training.h"
#include "stepverify/verifier.h"
#include "stepverify/verifier_spec.h"
#include "stepverify/version.h"
