/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
#include "sg_types.h"
