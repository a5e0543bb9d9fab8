// stepverify/stepverify.h: the umbrella header: the core (stepverify/core.h),
// training and labeling (stepverify/train/, target stepverify::train) and
// evaluation (stepverify/eval/, target stepverify::eval).
//
//   #include <stepverify/stepverify.h>
//   auto model = stepverify::Model::load("path/to/checkpoint");
#pragma once

#include "stepverify/core.h"
#include "stepverify/distributed.h"
#include "stepverify/eval/bon.h"
#include "stepverify/eval/evaluation.h"
#include "stepverify/train/datasets.h"
#include "stepverify/train/labeling.h"
#include "stepverify/train/tokenizer_trainer.h"
#include "stepverify/train/training.h"
