// Links the training target: the trainer's options are usable as installed.
#include <iostream>

#include <stepverify/train/training.h>

int main() {
  stepverify::TrainOptions o;
  std::cout << "train steps " << o.steps << "\n";
  return o.steps > 0 ? 0 : 1;
}
