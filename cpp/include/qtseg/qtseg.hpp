// Umbrella header of libqtseg_infer.
#pragma once

#include "qtseg/backend.hpp"
#include "qtseg/errors.hpp"
#include "qtseg/image.hpp"
#include "qtseg/manifest.hpp"
#include "qtseg/preprocess.hpp"
#include "qtseg/segmenter.hpp"
#include "qtseg/sha256.hpp"
#include "qtseg/tensor.hpp"
#include "qtseg/version.hpp"
