/* One action of the exported Pendulum-v1 policy: see README.md for the commands. */
#include <stdio.h>

#include "pendulum.h"

int main(void)
{
    /* Pendulum-v1's observation: cos(angle), sin(angle), angular velocity */
    const float obs[pendulum_OBS_DIM] = {0.5f, 0.8660254f, -1.0f};
    float action[pendulum_ACT_DIM];
    int i;

    pendulum_act(obs, action); /* no allocation, no state: call it every control step */
    for (i = 0; i < pendulum_ACT_DIM; ++i) {
        printf("action[%d] = %.6f\n", i, action[i]);
    }
    return 0;
}
